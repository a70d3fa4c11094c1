//! One ONNX model: its session, its declared inputs and outputs, and a float-tensor run.
//! Typed column mapping, batching and session pools build on this (see the design notes).

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use crate::{ServingError, runtime};

/// A float tensor as it leaves the model: its name, shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub name: String,
    pub shape: Vec<i64>,
    pub values: Vec<f32>,
}

pub struct OnnxModel {
    session: Mutex<Session>,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

impl OnnxModel {
    /// Loads a model file with the process-wide ONNX Runtime (located as `runtime` describes).
    pub fn load(path: &Path, onnxruntime_lib: Option<&Path>) -> Result<Self, ServingError> {
        let env = runtime::environment(onnxruntime_lib)?;
        let fail = |e: ort::Error| ServingError::Model { path: path.display().to_string(), message: e.to_string() };
        let session = Session::builder(env).map_err(fail)?.commit_from_file(path).map_err(fail)?;
        let inputs = session.inputs().iter().map(|o| o.name().to_string()).collect();
        let outputs = session.outputs().iter().map(|o| o.name().to_string()).collect();
        Ok(Self { session: Mutex::new(session), inputs, outputs })
    }

    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[String] {
        &self.outputs
    }

    /// Runs the model on one float input of shape `shape` and returns its float outputs.
    pub fn run_f32(&self, input: &str, shape: &[i64], values: Vec<f32>) -> Result<Vec<Output>, ServingError> {
        if !self.inputs.iter().any(|i| i == input) {
            return Err(ServingError::BadInput(format!(
                "the model has no input named '{input}' (inputs: {})",
                self.inputs.join(", ")
            )));
        }
        let expected: i64 = shape.iter().product();
        if expected < 0 || expected as usize != values.len() {
            return Err(ServingError::BadInput(format!(
                "input '{input}': shape {shape:?} needs {expected} values, got {}",
                values.len()
            )));
        }
        let tensor = Tensor::from_array((shape.to_vec(), values))
            .map_err(|e| ServingError::BadInput(format!("input '{input}': {e}")))?;
        let mut session = self.session.lock().map_err(|_| ServingError::Inference("session lock poisoned".into()))?;
        let outputs = session.run(ort::inputs![input => tensor]).map_err(|e| ServingError::Inference(e.to_string()))?;
        let mut out = Vec::new();
        for (name, value) in outputs.iter() {
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| ServingError::Inference(format!("output '{name}' is not a float tensor: {e}")))?;
            out.push(Output { name: name.to_string(), shape: shape.iter().copied().collect(), values: data.to_vec() });
        }
        Ok(out)
    }
}
