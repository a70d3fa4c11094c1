use slipway_serving::model::{LoadOptions, ModelId, OnnxModel, OutputKind};
use slipway_serving::tensor::{Data, Elem, Named, Tensor};

use super::*;

fn open(onnx: &str) -> (tempfile::TempDir, OnnxModel) {
    open_with(onnx, LoadOptions { sessions: 1, ..LoadOptions::default() })
}

fn open_with(onnx: &str, options: LoadOptions) -> (tempfile::TempDir, OnnxModel) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = model_dir(tmp.path(), "m", onnx, None);
    let id = ModelId { name: "m".into(), version: "1".into() };
    let model = OnnxModel::load(&dir, id, &options).unwrap();
    (tmp, model)
}

#[test]
fn the_runtime_is_found_and_runs_an_exported_regressor() {
    let lib = slipway_serving::runtime::locate(None).expect("onnx runtime must be installed for the tests");
    assert!(lib.file_name().unwrap().to_string_lossy().starts_with("libonnxruntime.so"), "{}", lib.display());
    let (_tmp, model) = open(LINEAR);
    assert_eq!(model.inputs.len(), 1);
    assert_eq!((model.inputs[0].name.as_str(), model.inputs[0].elem), ("X", Elem::F32));
    assert!(model.batchable());
    let rows: [[f32; 3]; 4] = [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [-1.5, 0.25, 4.0], [10.0, -10.0, 0.5]];
    let x = Named::new("X", Tensor::new(vec![4, 3], Data::F32(rows.iter().flatten().copied().collect())));
    let out = model.run(&[x]).unwrap();
    assert_eq!(out[0].name, "variable");
    assert_eq!(out[0].tensor.shape, [4, 1]);
    let Data::F32(got) = &out[0].tensor.data else { panic!("{:?}", out[0]) };
    for (row, got) in rows.iter().zip(got) {
        assert!((got - linear(row)).abs() < 1e-4, "row {row:?}: got {got}");
    }
}

#[test]
fn zipmap_outputs_become_dense_probabilities_with_their_classes() {
    let (_tmp, model) = open(LOGREG);
    let classes = Data::Str(vec!["no".into(), "yes".into()]);
    assert_eq!(model.outputs[1].name, "output_probability");
    assert_eq!(model.outputs[1].kind, OutputKind::Classes { dense: "probabilities".into(), classes });
    assert_eq!(model.outputs[1].shape, [-1, 2]);
    let rows = [[0.9f32, 0.8, 0.1], [0.1, 0.2, 0.3], [0.5, 0.52, 0.0]];
    let x = Named::new("X", Tensor::new(vec![3, 3], Data::F32(rows.iter().flatten().copied().collect())));
    let out = model.run(std::slice::from_ref(&x)).unwrap();
    // The ZipMap run as the model has it (maps read back through the C API) answers the same.
    let (_tmp2, kept) = open_with(LOGREG, LoadOptions { sessions: 1, keep_zipmap: true, ..LoadOptions::default() });
    assert_eq!(kept.outputs[1].kind, OutputKind::ZipMap { key: Elem::Str });
    assert_eq!(kept.outputs[1].shape, [-1, 2]);
    assert_eq!(kept.run(&[x]).unwrap(), out);
    let labels = &out[0];
    let probs = &out[1];
    assert_eq!(probs.classes, Some(Data::Str(vec!["no".into(), "yes".into()])));
    assert_eq!(probs.tensor.shape, [3, 2]);
    let Data::F32(p) = &probs.tensor.data else { panic!() };
    let Data::Str(l) = &labels.tensor.data else { panic!() };
    for (i, row) in rows.iter().enumerate() {
        let want = p_yes(row);
        assert!((f64::from(p[2 * i + 1]) - want).abs() < 1e-3, "row {i}: {} vs {want}", p[2 * i + 1]);
        assert!((p[2 * i] + p[2 * i + 1] - 1.0).abs() < 1e-5);
        assert_eq!(l[i], if want > 0.5 { "yes" } else { "no" });
    }
}

#[test]
fn a_wrong_inner_dimension_is_bad_input_and_the_model_keeps_serving() {
    let (_tmp, model) = open(LINEAR);
    let bad = Named::new("X", Tensor::new(vec![1, 4], Data::F32(vec![0.0; 4])));
    let err = model.run(&[bad]).unwrap_err();
    assert!(matches!(err, ServingError::BadInput(_)), "{err}");
    let missing = model.run(&[]).unwrap_err();
    assert!(matches!(&missing, ServingError::BadInput(m) if m.contains("'X'")), "{missing}");
    let ok = Named::new("X", Tensor::new(vec![1, 3], Data::F32(vec![0.0; 3])));
    assert_eq!(model.run(&[ok]).unwrap()[0].tensor.shape, [1, 1]);
}

#[test]
fn a_model_without_the_onnx_flavor_is_refused_with_export_advice() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("MLmodel"), "flavors:\n  sklearn:\n    pickled_model: model.pkl\n").unwrap();
    let id = ModelId { name: "m".into(), version: "1".into() };
    let err = OnnxModel::load(tmp.path(), id, &LoadOptions::default()).err().unwrap();
    assert!(matches!(&err, ServingError::NotServable(m) if m.contains("sklearn") && m.contains("skl2onnx")), "{err}");
}
