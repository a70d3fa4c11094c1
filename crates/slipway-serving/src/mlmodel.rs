//! The `MLmodel` file MLflow writes beside a model: which flavors it has, where the ONNX file
//! is, and the signature that names the model's columns or tensors. A model without the
//! `onnx` flavor is refused here, with the way to export it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::ServingError;
use crate::tensor::Elem;

/// One column of a column-based signature.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: Option<String>,
    pub elem: Option<Elem>,
    pub required: bool,
}

/// One tensor of a tensor-based signature.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: Option<String>,
    pub elem: Elem,
    pub shape: Vec<i64>,
}

/// A model's input signature.
#[derive(Debug, Clone, PartialEq)]
pub enum Signature {
    Columns(Vec<ColumnSpec>),
    Tensors(Vec<TensorSpec>),
}

#[derive(Debug, Clone)]
pub struct MlModel {
    /// The ONNX file, relative to the model directory.
    pub onnx_file: String,
    pub signature: Option<Signature>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    flavors: BTreeMap<String, serde_yaml_ng::Value>,
    #[serde(default)]
    signature: Option<RawSignature>,
}

#[derive(Deserialize)]
struct RawSignature {
    #[serde(default)]
    inputs: Option<String>,
}

#[derive(Deserialize)]
struct RawSpec {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "yes")]
    required: bool,
    #[serde(rename = "tensor-spec", default)]
    tensor_spec: Option<RawTensorSpec>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct RawTensorSpec {
    dtype: String,
    shape: Vec<i64>,
}

/// How to turn a model of another flavor into one Slipway serves.
pub fn export_advice(flavors: &[String]) -> String {
    let names = if flavors.is_empty() { "none".to_string() } else { flavors.join(", ") };
    format!(
        "the model has no onnx flavor (flavors: {names}); slipway serves ONNX models: export it, e.g. for \
         scikit-learn `onx = skl2onnx.to_onnx(model, X[:1].astype(numpy.float32))`, then log it with \
         `mlflow.onnx.log_model(onx, name=\"model\", signature=...)` and register that version"
    )
}

impl MlModel {
    pub fn read(dir: &Path) -> Result<MlModel, ServingError> {
        let path = dir.join("MLmodel");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ServingError::NotServable(format!("cannot read {}: {e}", path.display())))?;
        MlModel::parse(&text)
    }

    pub fn parse(text: &str) -> Result<MlModel, ServingError> {
        let raw: Raw = serde_yaml_ng::from_str(text)
            .map_err(|e| ServingError::NotServable(format!("the MLmodel file is not valid YAML: {e}")))?;
        let Some(onnx) = raw.flavors.get("onnx") else {
            let flavors: Vec<String> = raw.flavors.keys().filter(|f| *f != "python_function").cloned().collect();
            return Err(ServingError::NotServable(export_advice(&flavors)));
        };
        let onnx_file = onnx.get("data").and_then(|d| d.as_str()).unwrap_or("model.onnx").to_string();
        if onnx_file.split('/').any(|s| s == ".." || s.is_empty()) || onnx_file.starts_with('/') {
            return Err(ServingError::NotServable(format!("the onnx flavor names an unsafe file '{onnx_file}'")));
        }
        let signature = match raw.signature.and_then(|s| s.inputs) {
            Some(json) => parse_signature(&json)?,
            None => None,
        };
        Ok(MlModel { onnx_file, signature })
    }
}

fn parse_signature(json: &str) -> Result<Option<Signature>, ServingError> {
    let bad = |e: String| ServingError::NotServable(format!("the MLmodel signature cannot be read: {e}"));
    let specs: Vec<RawSpec> = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    if specs.is_empty() {
        return Ok(None);
    }
    if specs.iter().all(|s| s.ty == "tensor") {
        let tensors = specs
            .into_iter()
            .map(|s| {
                let t = s.tensor_spec.ok_or_else(|| bad("a tensor input has no tensor-spec".into()))?;
                let elem = Elem::from_mlflow(&t.dtype).ok_or_else(|| bad(format!("unknown dtype '{}'", t.dtype)))?;
                Ok(TensorSpec { name: s.name, elem, shape: t.shape })
            })
            .collect::<Result<_, ServingError>>()?;
        return Ok(Some(Signature::Tensors(tensors)));
    }
    let columns = specs
        .into_iter()
        .map(|s| ColumnSpec { elem: Elem::from_mlflow(&s.ty), name: s.name, required: s.required })
        .collect();
    Ok(Some(Signature::Columns(columns)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONNX: &str = "artifact_path: model\nflavors:\n  onnx:\n    code: null\n    data: model.onnx\n    \
        onnx_version: 1.17.0\n  python_function:\n    data: model.onnx\n    loader_module: mlflow.onnx\n";

    #[test]
    fn reads_the_onnx_file_and_a_folded_column_signature() {
        // PyYAML folds long quoted scalars over several lines; the parser must join them.
        let text = format!(
            "{ONNX}signature:\n  inputs: '[{{\"type\": \"double\", \"name\": \"sepal length\", \"required\": true}},\n    \
             {{\"type\": \"string\", \"name\": \"colour\", \"required\": false}}]'\n  outputs: null\n"
        );
        let m = MlModel::parse(&text).unwrap();
        assert_eq!(m.onnx_file, "model.onnx");
        let Some(Signature::Columns(cols)) = m.signature else { panic!("{:?}", m.signature) };
        assert_eq!(cols[0].name.as_deref(), Some("sepal length"));
        assert_eq!(cols[0].elem, Some(Elem::F64));
        assert_eq!((cols[1].elem, cols[1].required), (Some(Elem::Str), false));
    }

    #[test]
    fn reads_a_tensor_signature() {
        let text = format!(
            "{ONNX}signature:\n  inputs: '[{{\"type\": \"tensor\", \"tensor-spec\": {{\"dtype\": \"float32\", \"shape\": [-1, 4]}}}}]'\n"
        );
        let m = MlModel::parse(&text).unwrap();
        assert_eq!(
            m.signature,
            Some(Signature::Tensors(vec![TensorSpec { name: None, elem: Elem::F32, shape: vec![-1, 4] }]))
        );
    }

    #[test]
    fn other_flavors_are_refused_with_export_advice() {
        let text = "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n  sklearn:\n    pickled_model: model.pkl\n";
        let err = MlModel::parse(text).unwrap_err().to_string();
        assert!(err.contains("sklearn") && err.contains("skl2onnx") && err.contains("mlflow.onnx.log_model"), "{err}");
    }

    #[test]
    fn an_escaping_data_file_is_refused() {
        let text = "flavors:\n  onnx:\n    data: ../../etc/passwd\n";
        assert!(MlModel::parse(text).is_err());
    }
}
