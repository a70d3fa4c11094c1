//! The step graph: an edge runs from the step that writes a path to every step that reads
//! it (the path itself, a file inside an out folder, or a folder holding an out), plus the
//! `after:` lists and the steps a `when:` reads metrics from.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::error::{Location, PipelineError, Result};
use crate::spec::{Dep, Pipeline, RelPath};

#[derive(Debug, Clone)]
pub struct Dag {
    /// Step indices in an order where each step comes after everything it needs.
    pub order: Vec<usize>,
    pub upstream: Vec<BTreeSet<usize>>,
    pub downstream: Vec<BTreeSet<usize>>,
}

impl Dag {
    pub fn build(p: &Pipeline) -> Result<Dag> {
        let at =
            |i: usize| Location { file: p.file.clone(), line: p.steps[i].line, step: Some(p.steps[i].name.clone()) };
        let index: BTreeMap<&str, usize> = p.steps.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
        // Every out, by path; one path has one writer, and no out lies inside another.
        let mut writers: BTreeMap<&RelPath, usize> = BTreeMap::new();
        for (i, s) in p.steps.iter().enumerate() {
            for o in &s.outs {
                if let Some(&j) = writers.get(o) {
                    let (first, second) = if j < i { (j, i) } else { (i, j) };
                    return Err(dup(p, at(second), o, first));
                }
                writers.insert(o, i);
            }
        }
        let mut prev: Option<(&RelPath, usize)> = None;
        for (&o, &i) in &writers {
            if let Some((po, pi)) = prev
                && o.within(po)
            {
                return Err(dup(p, at(i.max(pi)), o, i.min(pi)));
            }
            prev = Some((o, i));
        }
        let n = p.steps.len();
        let mut upstream = vec![BTreeSet::new(); n];
        for (i, s) in p.steps.iter().enumerate() {
            for d in &s.deps {
                let Dep::Path(path) = d else { continue };
                let producers = producers_of(&writers, path);
                if producers.is_empty() && !path.under(&p.root).exists() {
                    return Err(PipelineError::UnknownDep { at: at(i), path: path.to_string() });
                }
                upstream[i].extend(producers);
            }
            let named = s.after.iter().map(String::as_str).chain(s.when.iter().flat_map(|w| w.steps()));
            for name in named {
                match index.get(name) {
                    Some(&j) => {
                        upstream[i].insert(j);
                    }
                    None => {
                        return Err(PipelineError::Invalid {
                            at: at(i),
                            message: format!("'{name}' is not a step of this pipeline"),
                        });
                    }
                }
            }
        }
        let mut downstream = vec![BTreeSet::new(); n];
        for (i, ups) in upstream.iter().enumerate() {
            for &u in ups {
                downstream[u].insert(i);
            }
        }
        // Kahn's algorithm, taking ready steps in file order.
        let mut waiting: Vec<usize> = upstream.iter().map(BTreeSet::len).collect();
        let mut ready: VecDeque<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_front() {
            order.push(i);
            for &d in &downstream[i] {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    ready.push_back(d);
                }
            }
        }
        if order.len() < n {
            let cycle = find_cycle(&upstream, &waiting);
            let names = cycle.iter().map(|&i| p.steps[i].name.clone()).collect();
            return Err(PipelineError::Cycle { at: at(cycle[0]), cycle: names });
        }
        Ok(Dag { order, upstream, downstream })
    }

    /// `target` and everything it needs, in run order.
    pub fn with_upstream(&self, target: usize) -> BTreeSet<usize> {
        let mut keep = BTreeSet::from([target]);
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            for &u in &self.upstream[i] {
                if keep.insert(u) {
                    todo.push(u);
                }
            }
        }
        keep
    }
}

/// The steps whose outs `path` reads: an out equal to it, holding it, or inside it.
fn producers_of(writers: &BTreeMap<&RelPath, usize>, path: &RelPath) -> BTreeSet<usize> {
    let mut found = BTreeSet::new();
    let text = path.as_str();
    // Outs that hold `path` (or are it): its ancestors, at most one per level.
    let mut end = text.len();
    loop {
        if let Some(&i) = writers.get(&path.prefix(end)) {
            found.insert(i);
        }
        match text[..end].rfind('/') {
            Some(slash) => end = slash,
            None => break,
        }
    }
    // Outs inside `path`: the keys that start with "path/", contiguous in sorted order.
    if text.is_empty() {
        found.extend(writers.values());
        return found;
    }
    let start = path.inside_start();
    for (o, &i) in writers.range::<&RelPath, _>(&start..) {
        if !o.within(path) {
            break;
        }
        found.insert(i);
    }
    found
}

fn dup(p: &Pipeline, at: Location, path: &RelPath, other: usize) -> PipelineError {
    PipelineError::DuplicateOut {
        at,
        path: path.to_string(),
        other: p.steps[other].name.clone(),
        other_line: p.steps[other].line,
    }
}

/// A cycle among the steps Kahn's algorithm could not order, first step repeated at the end.
fn find_cycle(upstream: &[BTreeSet<usize>], waiting: &[usize]) -> Vec<usize> {
    let stuck: Vec<usize> = (0..waiting.len()).filter(|&i| waiting[i] > 0).collect();
    // Every stuck step has a stuck upstream; walk until a step repeats.
    let mut path = vec![stuck[0]];
    let mut seen = BTreeMap::from([(stuck[0], 0usize)]);
    loop {
        let here = path[path.len() - 1];
        let Some(&next) = upstream[here].iter().find(|&&u| waiting[u] > 0) else { return path };
        if let Some(&at) = seen.get(&next) {
            let mut cycle: Vec<usize> = path[at..].to_vec();
            cycle.reverse();
            cycle.push(cycle[0]);
            return cycle;
        }
        seen.insert(next, path.len());
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse;
    use std::path::Path;

    fn dag(text: &str) -> Result<(Pipeline, Dag)> {
        let p = parse(Path::new("/nonexistent/p/slipway.yaml"), text)?;
        let d = Dag::build(&p)?;
        Ok((p, d))
    }

    #[test]
    fn edges_follow_paths_in_both_directions() {
        let (p, d) = dag(
            "steps:\n  use_file:\n    cmd: a\n    deps: [data/clean/x.csv]\n  make:\n    cmd: b\n    outs: [data/clean]\n  use_folder:\n    cmd: c\n    deps: [data]\n    outs: [report]\n  last:\n    cmd: d\n    after: [use_folder]\n",
        )
        .unwrap();
        let names: Vec<&str> = d.order.iter().map(|&i| p.steps[i].name.as_str()).collect();
        assert_eq!(names, ["make", "use_file", "use_folder", "last"]);
        assert_eq!(d.with_upstream(3), BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn cycles_duplicates_and_unknown_deps_are_named() {
        let err =
            dag("steps:\n  a: {cmd: x, deps: [b.out], outs: [a.out]}\n  b: {cmd: y, deps: [a.out], outs: [b.out]}\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("dependency cycle: ") && err.contains("a -> b -> a") || err.contains("b -> a -> b"),
            "{err}"
        );
        let err = dag("steps:\n  a: {cmd: x, outs: [m]}\n  b: {cmd: y, outs: [m/inner]}\n").unwrap_err().to_string();
        assert!(err.contains(":3 (step 'b'): 'm/inner' is also an out of step 'a' (2)"), "{err}");
        let err = dag("steps:\n  a: {cmd: x, deps: [missing.csv]}\n").unwrap_err().to_string();
        assert!(err.contains(":2 (step 'a'): 'missing.csv' is neither in the project"), "{err}");
        let err = dag("steps:\n  a: {cmd: x, after: [zz]}\n").unwrap_err().to_string();
        assert!(err.contains("'zz' is not a step"), "{err}");
        let err = dag("steps:\n  a: {cmd: x, deps: [o], outs: [o]}\n").unwrap_err().to_string();
        assert!(err.contains("dependency cycle: a -> a"), "{err}");
    }
}
