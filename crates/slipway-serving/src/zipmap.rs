//! Removes skl2onnx's `ZipMap` from a model before it is loaded. A ZipMap turns the dense
//! `[rows, classes]` probabilities into one `{class: probability}` map per row, and reading
//! those maps back through ONNX Runtime's C API costs a few calls per row: for 100 rows of a
//! logistic regression, eight times the model's own run. Serving answers with the dense rows
//! and the classes anyway (`extract_zipmap` in `model` does the same for a ZipMap it meets),
//! so the node goes: its input becomes the graph output, its class labels are read from its
//! attributes, and the client sees the same answer.
//!
//! This edits the ONNX protobuf at the wire level, touching only the fields it must: the
//! graph's `node` and `output` entries. Anything unexpected (another node reading the
//! ZipMap's output, weights in external files, a malformed field) leaves the model as it is.

use crate::tensor::Data;

/// One ZipMap removed: the output clients know, the dense tensor that now stands for it, and
/// the class labels in the model's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Elided {
    pub output: String,
    pub dense: String,
    pub classes: Data,
}

/// The model without its ZipMap nodes, or `None` when there is nothing (safe) to remove.
pub fn elide(model: &[u8]) -> Option<(Vec<u8>, Vec<Elided>)> {
    const MODEL_GRAPH: u32 = 7;
    const GRAPH_NODE: u32 = 1;
    const GRAPH_INITIALIZER: u32 = 5;
    const GRAPH_OUTPUT: u32 = 12;
    let top = fields(model)?;
    let graph = top.iter().find(|f| f.number == MODEL_GRAPH)?.bytes()?;
    let parts = fields(graph)?;
    let nodes: Vec<Node> = parts
        .iter()
        .filter(|f| f.number == GRAPH_NODE)
        .map(|f| f.bytes().and_then(Node::parse))
        .collect::<Option<_>>()?;
    let outputs: Vec<String> = parts
        .iter()
        .filter(|f| f.number == GRAPH_OUTPUT)
        .map(|f| f.bytes().and_then(value_info_name))
        .collect::<Option<_>>()?;
    let mut elided = Vec::new();
    for node in nodes.iter().filter(|n| n.op_type == "ZipMap" && n.domain == "ai.onnx.ml") {
        let ([dense], [output]) = (node.inputs.as_slice(), node.outputs.as_slice()) else { return None };
        let read_elsewhere = nodes.iter().any(|n| n.inputs.contains(output));
        if read_elsewhere || !outputs.contains(output) || outputs.contains(dense) {
            return None;
        }
        elided.push(Elided { output: output.clone(), dense: dense.clone(), classes: node.classes.clone()? });
    }
    if elided.is_empty() {
        return None;
    }
    let external = parts.iter().filter(|f| f.number == GRAPH_INITIALIZER).any(|f| f.bytes().is_none_or(is_external));
    if external {
        return None;
    }
    let mut new_graph = Vec::with_capacity(graph.len());
    let mut node_index = 0;
    let mut output_index = 0;
    for f in &parts {
        match f.number {
            GRAPH_NODE => {
                let node = &nodes[node_index];
                node_index += 1;
                if !(node.op_type == "ZipMap" && node.domain == "ai.onnx.ml") {
                    new_graph.extend_from_slice(f.raw);
                }
            }
            GRAPH_OUTPUT => {
                let name = &outputs[output_index];
                output_index += 1;
                match elided.iter().find(|e| &e.output == name) {
                    Some(e) => put_bytes(&mut new_graph, GRAPH_OUTPUT, &float_tensor_info(&e.dense)),
                    None => new_graph.extend_from_slice(f.raw),
                }
            }
            _ => new_graph.extend_from_slice(f.raw),
        }
    }
    let mut out = Vec::with_capacity(model.len());
    for f in &top {
        if f.number == MODEL_GRAPH {
            put_bytes(&mut out, MODEL_GRAPH, &new_graph);
        } else {
            out.extend_from_slice(f.raw);
        }
    }
    Some((out, elided))
}

/// One protobuf field: its number, its payload, and its bytes as written (key included).
struct Field<'a> {
    number: u32,
    payload: Payload<'a>,
    raw: &'a [u8],
}

enum Payload<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Field<'a> {
    fn bytes(&self) -> Option<&'a [u8]> {
        match self.payload {
            Payload::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Splits a message into its fields; `None` if it is not well-formed protobuf.
fn fields(buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let key = varint(buf, &mut pos)?;
        let number = u32::try_from(key >> 3).ok()?;
        let payload = match key & 7 {
            0 => Payload::Varint(varint(buf, &mut pos)?),
            1 | 5 => {
                pos = pos.checked_add(if key & 7 == 1 { 8 } else { 4 })?;
                Payload::Fixed
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len)?;
                let b = buf.get(pos..end)?;
                pos = end;
                Payload::Bytes(b)
            }
            _ => return None,
        };
        if pos > buf.len() {
            return None;
        }
        out.push(Field { number, payload, raw: &buf[start..pos] });
    }
    Some(out)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn text(b: &[u8]) -> Option<String> {
    String::from_utf8(b.to_vec()).ok()
}

/// The parts of a `NodeProto` this module reads.
struct Node {
    inputs: Vec<String>,
    outputs: Vec<String>,
    op_type: String,
    domain: String,
    /// ZipMap's `classlabels_int64s` or `classlabels_strings`, when present.
    classes: Option<Data>,
}

impl Node {
    fn parse(buf: &[u8]) -> Option<Node> {
        let mut node = Node {
            inputs: Vec::new(),
            outputs: Vec::new(),
            op_type: String::new(),
            domain: String::new(),
            classes: None,
        };
        for f in fields(buf)? {
            match (f.number, f.bytes()) {
                (1, Some(b)) => node.inputs.push(text(b)?),
                (2, Some(b)) => node.outputs.push(text(b)?),
                (4, Some(b)) => node.op_type = text(b)?,
                (7, Some(b)) => node.domain = text(b)?,
                (5, Some(b)) => {
                    if let Some(classes) = class_labels(b)? {
                        node.classes = Some(classes);
                    }
                }
                _ => {}
            }
        }
        Some(node)
    }
}

/// An `AttributeProto`'s class labels if it is ZipMap's `classlabels_*`; `Some(None)` for
/// any other attribute.
fn class_labels(buf: &[u8]) -> Option<Option<Data>> {
    let parts = fields(buf)?;
    let name = parts.iter().find(|f| f.number == 1).and_then(Field::bytes).and_then(text);
    match name.as_deref() {
        Some("classlabels_int64s") => {
            let mut ints = Vec::new();
            for f in parts.iter().filter(|f| f.number == 8) {
                match f.payload {
                    Payload::Varint(v) => ints.push(v as i64),
                    Payload::Bytes(packed) => {
                        let mut pos = 0;
                        while pos < packed.len() {
                            ints.push(varint(packed, &mut pos)? as i64);
                        }
                    }
                    Payload::Fixed => return None,
                }
            }
            Some(Some(Data::I64(ints)))
        }
        Some("classlabels_strings") => {
            let strings =
                parts.iter().filter(|f| f.number == 9).map(|f| f.bytes().and_then(text)).collect::<Option<_>>()?;
            Some(Some(Data::Str(strings)))
        }
        _ => Some(None),
    }
}

fn value_info_name(buf: &[u8]) -> Option<String> {
    fields(buf)?.iter().find(|f| f.number == 1).and_then(Field::bytes).and_then(text)
}

/// Whether a `TensorProto` keeps its data in an external file (`data_location = EXTERNAL`).
fn is_external(buf: &[u8]) -> bool {
    fields(buf).is_none_or(|f| f.iter().any(|f| f.number == 14 && matches!(f.payload, Payload::Varint(1))))
}

/// A `ValueInfoProto` for a float tensor of unknown shape.
fn float_tensor_info(name: &str) -> Vec<u8> {
    const FLOAT: u64 = 1;
    let mut tensor = Vec::new();
    put_varint(&mut tensor, 1 << 3);
    put_varint(&mut tensor, FLOAT);
    let mut ty = Vec::new();
    put_bytes(&mut ty, 1, &tensor);
    let mut info = Vec::new();
    put_bytes(&mut info, 1, name.as_bytes());
    put_bytes(&mut info, 2, &ty);
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(inputs: &[&str], outputs: &[&str], op: &str, domain: &str, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut n = Vec::new();
        for i in inputs {
            put_bytes(&mut n, 1, i.as_bytes());
        }
        for o in outputs {
            put_bytes(&mut n, 2, o.as_bytes());
        }
        put_bytes(&mut n, 4, op.as_bytes());
        for a in attrs {
            put_bytes(&mut n, 5, a);
        }
        put_bytes(&mut n, 7, domain.as_bytes());
        n
    }

    fn output(name: &str) -> Vec<u8> {
        let mut v = Vec::new();
        put_bytes(&mut v, 1, name.as_bytes());
        v
    }

    fn model(graph_parts: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut graph = Vec::new();
        for (n, b) in graph_parts {
            put_bytes(&mut graph, *n, b);
        }
        let mut m = Vec::new();
        put_varint(&mut m, 1 << 3);
        put_varint(&mut m, 8);
        put_bytes(&mut m, 7, &graph);
        m
    }

    fn int_labels(packed: bool) -> Vec<u8> {
        let mut a = Vec::new();
        put_bytes(&mut a, 1, b"classlabels_int64s");
        if packed {
            let mut p = Vec::new();
            put_varint(&mut p, 0);
            put_varint(&mut p, 1);
            put_bytes(&mut a, 8, &p);
        } else {
            for v in [0u64, 1] {
                put_varint(&mut a, 8 << 3);
                put_varint(&mut a, v);
            }
        }
        a
    }

    #[test]
    fn a_zipmap_at_the_end_is_removed_and_its_classes_kept() {
        for packed in [false, true] {
            let m = model(&[
                (1, node(&["X"], &["label", "probabilities"], "LinearClassifier", "ai.onnx.ml", &[])),
                (1, node(&["probabilities"], &["output_probability"], "ZipMap", "ai.onnx.ml", &[int_labels(packed)])),
                (12, output("label")),
                (12, output("output_probability")),
            ]);
            let (out, elided) = elide(&m).expect("elided");
            assert_eq!(
                elided,
                [Elided {
                    output: "output_probability".into(),
                    dense: "probabilities".into(),
                    classes: Data::I64(vec![0, 1])
                }]
            );
            let graph = fields(&out).unwrap().into_iter().find(|f| f.number == 7).unwrap().bytes().unwrap().to_vec();
            let parts = fields(&graph).unwrap();
            assert_eq!(parts.iter().filter(|f| f.number == 1).count(), 1);
            let names: Vec<String> =
                parts.iter().filter(|f| f.number == 12).map(|f| value_info_name(f.bytes().unwrap()).unwrap()).collect();
            assert_eq!(names, ["label", "probabilities"]);
        }
    }

    #[test]
    fn a_zipmap_read_by_another_node_or_with_external_weights_stays() {
        let mut labels = Vec::new();
        put_bytes(&mut labels, 1, b"classlabels_strings");
        put_bytes(&mut labels, 9, b"no");
        put_bytes(&mut labels, 9, b"yes");
        let zip = node(&["p"], &["zm"], "ZipMap", "ai.onnx.ml", &[labels]);
        let read = model(&[(1, zip.clone()), (1, node(&["zm"], &["y"], "Identity", "", &[])), (12, output("y"))]);
        assert!(elide(&read).is_none());
        let mut external = Vec::new();
        put_varint(&mut external, 14 << 3);
        put_varint(&mut external, 1);
        let ext = model(&[(1, zip.clone()), (5, external), (12, output("zm"))]);
        assert!(elide(&ext).is_none());
        let (_, e) = elide(&model(&[(1, zip), (12, output("zm"))])).unwrap();
        assert_eq!(e[0].classes, Data::Str(vec!["no".into(), "yes".into()]));
        assert!(elide(b"\xff\xff").is_none());
        assert!(elide(&model(&[(12, output("y"))])).is_none());
    }
}
