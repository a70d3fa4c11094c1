//! The real ONNX Runtime (from the `onnxruntime` wheel, found as a user's machine would find
//! it) runs a scikit-learn model exported with skl2onnx. `scripts/test.sh` points
//! `VIRTUAL_ENV` at the project's `.venv`, where `onnxruntime` is installed.

use std::path::PathBuf;

use slipway_serving::ServingError;
use slipway_serving::onnx::OnnxModel;

/// LinearRegression fitted on y = 2x - 3y + 0.5z + 1.25, exported by skl2onnx 1.20.
fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/linear_2x_minus3y_half_z_plus_1_25.onnx")
}

#[test]
fn the_runtime_is_found_and_runs_an_exported_model() {
    let lib = slipway_serving::runtime::locate(None).expect("onnx runtime must be installed for the tests");
    assert!(lib.file_name().unwrap().to_string_lossy().starts_with("libonnxruntime.so"), "{}", lib.display());

    let model = OnnxModel::load(&fixture(), None).unwrap();
    assert_eq!(model.inputs(), ["X"]);
    assert_eq!(model.outputs(), ["variable"]);

    let rows: [[f32; 3]; 4] = [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [-1.5, 0.25, 4.0], [10.0, -10.0, 0.5]];
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let out = model.run_f32("X", &[4, 3], flat).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].name, "variable");
    assert_eq!(out[0].shape, [4, 1]);
    for (row, got) in rows.iter().zip(&out[0].values) {
        let want = 2.0 * row[0] - 3.0 * row[1] + 0.5 * row[2] + 1.25;
        assert!((got - want).abs() < 1e-4, "row {row:?}: got {got}, want {want}");
    }
}

#[test]
fn mismatched_inputs_are_named_in_the_error() {
    let model = OnnxModel::load(&fixture(), None).unwrap();
    let err = model.run_f32("features", &[1, 3], vec![0.0; 3]).unwrap_err();
    assert!(matches!(&err, ServingError::BadInput(m) if m.contains("'features'") && m.contains("X")), "{err}");
    let err = model.run_f32("X", &[2, 3], vec![0.0; 3]).unwrap_err();
    assert!(matches!(&err, ServingError::BadInput(m) if m.contains("'X'")), "{err}");
    // A wrong inner dimension reaches ONNX Runtime, which refuses it without crashing.
    assert!(model.run_f32("X", &[1, 4], vec![0.0; 4]).is_err());
    // The model still serves after the bad requests.
    assert_eq!(model.run_f32("X", &[1, 3], vec![0.0; 3]).unwrap()[0].values.len(), 1);
}

#[test]
fn a_missing_model_file_is_a_model_error() {
    let err = OnnxModel::load(&PathBuf::from("/nonexistent/model.onnx"), None).err().unwrap();
    assert!(matches!(err, ServingError::Model { .. }), "{err}");
}
