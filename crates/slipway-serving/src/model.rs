//! A loaded model: its ONNX Runtime sessions, its declared inputs and outputs, and a run over
//! named tensors. Sessions use one intra-op thread each: parallelism comes from the worker
//! pool running batches of different models (or of one model on several sessions), so a
//! thousand loaded models do not mean a thousand thread pools.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, PoisonError};

use ort::session::{Session, SessionInputValue};
use ort::value::{DynMapValueType, DynValue, TensorElementType, TensorRef, ValueType};

use crate::mlmodel::{MlModel, Signature};
use crate::tensor::{Data, Elem, Named, Tensor};
use crate::{ServingError, runtime, zipmap};

/// A declared model input: name, element type, and dimensions (-1 where free).
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub elem: Elem,
    pub shape: Vec<i64>,
}

/// A declared output: a tensor, or the per-row class probabilities skl2onnx's ZipMap makes.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputKind {
    Tensor(Elem),
    /// A ZipMap ONNX Runtime runs: a sequence of one class map per row.
    ZipMap {
        key: Elem,
    },
    /// A ZipMap removed at load (see `zipmap`): the dense tensor it would have mapped, read
    /// from the graph output `dense`, with the classes from its attributes.
    Classes {
        dense: String,
        classes: Data,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    pub name: String,
    pub kind: OutputKind,
    pub shape: Vec<i64>,
}

impl OutputSpec {
    /// The element type a client sees: ZipMap probabilities are dense FP32 rows.
    pub fn elem(&self) -> Elem {
        match self.kind {
            OutputKind::Tensor(e) => e,
            OutputKind::ZipMap { .. } | OutputKind::Classes { .. } => Elem::F32,
        }
    }

    /// The graph output this output is read from.
    fn graph_name(&self) -> &str {
        match &self.kind {
            OutputKind::Classes { dense, .. } => dense,
            _ => &self.name,
        }
    }
}

/// What identifies a loaded model in logs, metrics and responses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId {
    pub name: String,
    pub version: String,
}

impl std::fmt::Display for ModelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.name, self.version)
    }
}

/// How a model is opened.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub onnxruntime_lib: Option<PathBuf>,
    /// Sessions to open (at least one): how many batches of this model may run at once.
    pub sessions: usize,
    /// Run a ZipMap as the model has it instead of removing it at load (see `zipmap`): the
    /// same answers, slower; for comparing the two.
    pub keep_zipmap: bool,
}

pub struct OnnxModel {
    pub id: ModelId,
    pub inputs: Vec<InputSpec>,
    pub outputs: Vec<OutputSpec>,
    pub signature: Option<Signature>,
    /// Bytes of model files read, the basis of the memory charge.
    pub file_bytes: u64,
    idle: Mutex<Vec<Session>>,
    returned: Condvar,
}

fn elem_of(t: TensorElementType) -> Option<Elem> {
    Some(match t {
        TensorElementType::Bool => Elem::Bool,
        TensorElementType::Int8 => Elem::I8,
        TensorElementType::Int16 => Elem::I16,
        TensorElementType::Int32 => Elem::I32,
        TensorElementType::Int64 => Elem::I64,
        TensorElementType::Uint8 => Elem::U8,
        TensorElementType::Uint16 => Elem::U16,
        TensorElementType::Uint32 => Elem::U32,
        TensorElementType::Uint64 => Elem::U64,
        TensorElementType::Float32 => Elem::F32,
        TensorElementType::Float64 => Elem::F64,
        TensorElementType::String => Elem::Str,
        _ => return None,
    })
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

impl OnnxModel {
    /// Opens the model in `dir` (an MLflow model directory with an `MLmodel` file, the way
    /// `mlflow.onnx.log_model` writes it, external weight files included).
    pub fn load(dir: &Path, id: ModelId, options: &LoadOptions) -> Result<OnnxModel, ServingError> {
        let mlmodel = MlModel::read(dir)?;
        let file = dir.join(&mlmodel.onnx_file);
        if !file.is_file() {
            return Err(ServingError::NotServable(format!(
                "the onnx flavor names '{}', which is missing",
                mlmodel.onnx_file
            )));
        }
        let env = runtime::environment(options.onnxruntime_lib.as_deref())?;
        let fail = |message: String| ServingError::Model { path: file.display().to_string(), message };
        let bytes = std::fs::read(&file).map_err(|e| fail(e.to_string()))?;
        let (edited, elided) =
            if options.keep_zipmap { Default::default() } else { zipmap::elide(&bytes).unwrap_or_default() };
        drop(bytes);
        let mut sessions = Vec::new();
        for _ in 0..options.sessions.max(1) {
            let mut builder = Session::builder(env)
                .and_then(|b| b.with_intra_threads(1).map_err(Into::into))
                .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
                .map_err(|e| fail(e.to_string()))?;
            // An unedited model loads from its file, so weights in external files resolve.
            let session =
                if elided.is_empty() { builder.commit_from_file(&file) } else { builder.commit_from_memory(&edited) };
            sessions.push(session.map_err(|e| fail(e.to_string()))?);
        }
        drop(edited);
        let first = &sessions[0];
        let mut inputs = Vec::new();
        for outlet in first.inputs() {
            match outlet.dtype() {
                ValueType::Tensor { ty, shape, .. } if elem_of(*ty).is_some() => inputs.push(InputSpec {
                    name: outlet.name().to_string(),
                    elem: elem_of(*ty).unwrap_or(Elem::F32),
                    shape: shape.iter().copied().collect(),
                }),
                other => return Err(fail(format!("input '{}' has an unsupported type {other:?}", outlet.name()))),
            }
        }
        let mut outputs = Vec::new();
        for outlet in first.outputs() {
            if let Some(e) = elided.iter().find(|e| e.dense == outlet.name()) {
                let kind = OutputKind::Classes { dense: e.dense.clone(), classes: e.classes.clone() };
                outputs.push(OutputSpec { name: e.output.clone(), kind, shape: vec![-1, e.classes.len() as i64] });
                continue;
            }
            let (kind, shape) = match outlet.dtype() {
                ValueType::Tensor { ty, shape, .. } if elem_of(*ty).is_some() => {
                    (OutputKind::Tensor(elem_of(*ty).unwrap_or(Elem::F32)), shape.iter().copied().collect())
                }
                ValueType::Sequence(inner) => match inner.as_ref() {
                    ValueType::Map { key, value: TensorElementType::Float32 }
                        if matches!(key, TensorElementType::Int64 | TensorElementType::String) =>
                    {
                        let key = if *key == TensorElementType::Int64 { Elem::I64 } else { Elem::Str };
                        (OutputKind::ZipMap { key }, vec![-1, -1])
                    }
                    other => return Err(fail(format!("output '{}' is a sequence of {other:?}", outlet.name()))),
                },
                other => return Err(fail(format!("output '{}' has an unsupported type {other:?}", outlet.name()))),
            };
            outputs.push(OutputSpec { name: outlet.name().to_string(), kind, shape });
        }
        // A warm-up run on every session: the first request does not pay for ONNX Runtime's
        // arena growth, the memory it takes is measured with the load, and a ZipMap output's
        // class count becomes known for the metadata. A model that refuses zeros is still
        // served; its first request warms it.
        let warm = warm_up_inputs(&inputs);
        for session in &mut sessions {
            match run_session(session, &inputs, &outputs, &warm) {
                Ok(out) => {
                    for (spec, got) in outputs.iter_mut().zip(&out) {
                        if matches!(spec.kind, OutputKind::ZipMap { .. }) {
                            spec.shape = vec![-1, got.tensor.row_width() as i64];
                        }
                    }
                }
                Err(e) => tracing::debug!(model = %id, error = %e, "warm-up run failed"),
            }
        }
        Ok(OnnxModel {
            id,
            inputs,
            outputs,
            signature: mlmodel.signature,
            file_bytes: dir_bytes(dir),
            idle: Mutex::new(sessions),
            returned: Condvar::new(),
        })
    }

    /// A model with these declarations and no session, for tests of what surrounds a run.
    #[cfg(test)]
    pub(crate) fn declared(inputs: Vec<InputSpec>, signature: Option<Signature>) -> OnnxModel {
        OnnxModel {
            id: ModelId { name: "declared".into(), version: "1".into() },
            inputs,
            outputs: Vec::new(),
            signature,
            file_bytes: 0,
            idle: Mutex::new(Vec::new()),
            returned: Condvar::new(),
        }
    }

    /// Whether requests can be stacked: every input's first dimension is free.
    pub fn batchable(&self) -> bool {
        self.inputs.iter().all(|i| i.shape.first().is_some_and(|d| *d < 0))
    }

    /// Runs the model once on `inputs` (one tensor per declared input, by name) and returns
    /// every output, ZipMap outputs as dense probability rows with their classes.
    pub fn run(&self, inputs: &[Named]) -> Result<Vec<Named>, ServingError> {
        let mut session = self.acquire();
        let result = run_session(&mut session, &self.inputs, &self.outputs, inputs);
        self.release(session);
        result
    }

    fn acquire(&self) -> Session {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(s) = idle.pop() {
                return s;
            }
            idle = self.returned.wait(idle).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn release(&self, session: Session) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(session);
        self.returned.notify_one();
    }
}

fn run_session(
    session: &mut Session,
    specs: &[InputSpec],
    outputs_spec: &[OutputSpec],
    inputs: &[Named],
) -> Result<Vec<Named>, ServingError> {
    let mut values: Vec<(&str, SessionInputValue<'_>)> = Vec::with_capacity(specs.len());
    for spec in specs {
        let named = inputs
            .iter()
            .find(|n| n.name == spec.name)
            .ok_or_else(|| ServingError::BadInput(format!("missing input '{}'", spec.name)))?;
        let value =
            input_value(&named.tensor).map_err(|e| ServingError::BadInput(format!("input '{}': {e}", spec.name)))?;
        values.push((spec.name.as_str(), value));
    }
    let outputs = session.run(values).map_err(|e| match e.code() {
        // ONNX Runtime checks what a model declares symbolically (inner dimensions, ranks):
        // its refusal is the request's fault, and its text says which input.
        ort::error::ErrorCode::InvalidArgument => ServingError::BadInput(format!("the model refused the input: {e}")),
        _ => ServingError::Inference(e.to_string()),
    })?;
    let mut out = Vec::with_capacity(outputs_spec.len());
    for spec in outputs_spec {
        let value = outputs
            .get(spec.graph_name())
            .ok_or_else(|| ServingError::Inference(format!("output '{}' is missing", spec.name)))?;
        out.push(extract(spec, value).map_err(|e| ServingError::Inference(format!("output '{}': {e}", spec.name)))?);
    }
    Ok(out)
}

/// One row of zeros (empty strings) for every input: what a warm-up run feeds.
fn warm_up_inputs(specs: &[InputSpec]) -> Vec<Named> {
    specs
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec.shape.iter().map(|&d| if d < 1 { 1 } else { d as usize }).collect();
            let n: usize = shape.iter().product();
            let data = match spec.elem {
                Elem::Bool => Data::Bool(vec![false; n]),
                Elem::I8 => Data::I8(vec![0; n]),
                Elem::I16 => Data::I16(vec![0; n]),
                Elem::I32 => Data::I32(vec![0; n]),
                Elem::I64 => Data::I64(vec![0; n]),
                Elem::U8 => Data::U8(vec![0; n]),
                Elem::U16 => Data::U16(vec![0; n]),
                Elem::U32 => Data::U32(vec![0; n]),
                Elem::U64 => Data::U64(vec![0; n]),
                Elem::F32 => Data::F32(vec![0.0; n]),
                Elem::F64 => Data::F64(vec![0.0; n]),
                Elem::Str => Data::Str(vec![String::new(); n]),
            };
            Named::new(spec.name.clone(), Tensor::new(shape, data))
        })
        .collect()
}

fn input_value(t: &Tensor) -> Result<SessionInputValue<'_>, ort::Error> {
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    macro_rules! view {
        ($v:expr) => {
            TensorRef::from_array_view((shape, &$v[..]))?.into()
        };
    }
    Ok(match &t.data {
        Data::Bool(v) => view!(v),
        Data::I8(v) => view!(v),
        Data::I16(v) => view!(v),
        Data::I32(v) => view!(v),
        Data::I64(v) => view!(v),
        Data::U8(v) => view!(v),
        Data::U16(v) => view!(v),
        Data::U32(v) => view!(v),
        Data::U64(v) => view!(v),
        Data::F32(v) => view!(v),
        Data::F64(v) => view!(v),
        Data::Str(v) => ort::value::Tensor::from_string_array((shape, &v[..]))?.into(),
    })
}

fn extract(spec: &OutputSpec, value: &DynValue) -> Result<Named, ort::Error> {
    let elem = match &spec.kind {
        OutputKind::Tensor(e) => *e,
        OutputKind::ZipMap { key } => return extract_zipmap(spec, *key, value),
        OutputKind::Classes { classes, .. } => {
            let (shape, data) = value.try_extract_tensor::<f32>()?;
            let shape = shape.iter().map(|&d| d.max(0) as usize).collect();
            return Ok(Named {
                name: spec.name.clone(),
                tensor: Tensor::new(shape, Data::F32(data.to_vec())),
                classes: Some(classes.clone()),
            });
        }
    };
    macro_rules! take {
        ($t:ty, $var:ident) => {{
            let (shape, data) = value.try_extract_tensor::<$t>()?;
            (shape.iter().map(|&d| d.max(0) as usize).collect(), Data::$var(data.to_vec()))
        }};
    }
    let (shape, data): (Vec<usize>, Data) = match elem {
        Elem::Bool => take!(bool, Bool),
        Elem::I8 => take!(i8, I8),
        Elem::I16 => take!(i16, I16),
        Elem::I32 => take!(i32, I32),
        Elem::I64 => take!(i64, I64),
        Elem::U8 => take!(u8, U8),
        Elem::U16 => take!(u16, U16),
        Elem::U32 => take!(u32, U32),
        Elem::U64 => take!(u64, U64),
        Elem::F32 => take!(f32, F32),
        Elem::F64 => take!(f64, F64),
        Elem::Str => {
            let (shape, data) = value.try_extract_strings()?;
            (shape.iter().map(|&d| d.max(0) as usize).collect(), Data::Str(data))
        }
    };
    Ok(Named::new(spec.name.clone(), Tensor::new(shape, data)))
}

/// A ZipMap output (one `{class: probability}` map per row) as `[rows, classes]` FP32 and
/// the class labels in the model's order.
fn extract_zipmap(spec: &OutputSpec, key: Elem, value: &DynValue) -> Result<Named, ort::Error> {
    let maps = value.try_extract_sequence::<DynMapValueType>()?;
    let rows = maps.len();
    let mut probs = Vec::new();
    let mut classes: Option<Data> = None;
    for map in &maps {
        match key {
            Elem::I64 => {
                let kv = map.try_extract_key_values::<i64, f32>()?;
                if classes.is_none() {
                    classes = Some(Data::I64(kv.iter().map(|(k, _)| *k).collect()));
                }
                probs.extend(kv.iter().map(|(_, v)| *v));
            }
            _ => {
                let kv = map.try_extract_key_values::<String, f32>()?;
                if classes.is_none() {
                    classes = Some(Data::Str(kv.iter().map(|(k, _)| k.clone()).collect()));
                }
                probs.extend(kv.iter().map(|(_, v)| *v));
            }
        }
    }
    let width = probs.len().checked_div(rows).unwrap_or(0);
    Ok(Named {
        name: spec.name.clone(),
        tensor: Tensor::new(vec![rows, width], Data::F32(probs)),
        classes: Some(classes.unwrap_or(Data::I64(Vec::new()))),
    })
}
