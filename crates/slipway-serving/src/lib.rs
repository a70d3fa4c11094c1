//! Model serving. This first part owns the ONNX Runtime: finding `libonnxruntime.so`, loading
//! it once per process, and running a model's session on tensors. Batching, the model cache
//! and the protocol routers follow `docs/design/serving.md`.

pub mod onnx;
pub mod runtime;

/// Errors of the serving layer.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// The ONNX Runtime library could not be found or loaded; the text says how to get it.
    #[error("{0}")]
    Runtime(String),
    /// A model file could not be loaded.
    #[error("cannot load model {path}: {message}")]
    Model { path: String, message: String },
    /// The request does not fit the model (input name, dtype, shape).
    #[error("{0}")]
    BadInput(String),
    /// ONNX Runtime failed while running a model.
    #[error("inference failed: {0}")]
    Inference(String),
}
