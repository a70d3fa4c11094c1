//! A process killed mid-segment leaves its spool as it was at that moment: the batches
//! written so far, no end-of-stream marker, perhaps half a message. The next start must
//! upload what is complete.

use std::path::{Path, PathBuf};

use super::*;

pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() { dirs.push(e.path()) } else { found.push(e.path()) }
        }
    }
    found
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    files(dir).into_iter().filter(|p| p.extension().is_some_and(|x| x == "arrows")).collect()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Starts a process on a copy of the spool, with a fresh artifact root; returns what it
/// uploaded for deployment `d` as (path, rows per batch).
async fn restart_on(spool: &Path) -> (tempfile::TempDir, Vec<(String, Vec<usize>)>) {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(spool, &dir.path().join("spool"));
    let (artifacts, log) = start(dir.path(), config(dir.path()));
    // The writer recovers the spool before it serves the queue, so a flush waits for it.
    assert!(log.flush().await.unwrap().is_empty());
    let mut uploaded = Vec::new();
    for path in list_segments(&artifacts, "d").await.unwrap() {
        let batches = read_segment(&artifacts, &path).await.unwrap();
        uploaded.push((path, batches.iter().map(RecordBatch::num_rows).collect()));
    }
    let left = files(&dir.path().join("spool"));
    assert!(left.is_empty(), "the spool is emptied: {left:?}");
    (dir, uploaded)
}

#[tokio::test]
async fn segments_left_by_a_dead_process_are_recovered_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let (_, log) = start(dir.path(), Config { flush_rows: 1, ..config(dir.path()) });
    for (i, rows) in [2usize, 3, 4].into_iter().enumerate() {
        log.record(entry("d", LEAP_DAY_US + i as i64, rows, vec![f32s("x", rows)]));
    }
    poll(|| async { log.logged_total("d") }, |&n| n == 9).await;
    let spooled = segment_files(&spool);
    assert_eq!(spooled.len(), 1, "one open segment");
    let rel: Vec<String> =
        spooled[0].strip_prefix(&spool).unwrap().iter().map(|s| s.to_string_lossy().into_owned()).collect();
    // Uploads are IPC files: the same path with the file format's extension.
    let rel = rel.join("/").replace(".arrows", ".arrow");

    // What kill -9 would leave now: the open segment as written, three batches, no end marker.
    let killed = tempfile::tempdir().unwrap();
    copy_tree(&spool, killed.path());
    // ... and killed halfway through writing the third batch.
    let torn = tempfile::tempdir().unwrap();
    copy_tree(&spool, torn.path());
    let torn_file = &segment_files(torn.path())[0];
    let len = std::fs::metadata(torn_file).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(torn_file).unwrap().set_len(len - 8).unwrap();
    // ... and killed before even the schema was complete.
    let empty = tempfile::tempdir().unwrap();
    copy_tree(&spool, empty.path());
    let empty_file = &segment_files(empty.path())[0];
    std::fs::OpenOptions::new().write(true).open(empty_file).unwrap().set_len(3).unwrap();
    drop(log);

    let (_keep, uploaded) = restart_on(killed.path()).await;
    assert_eq!(uploaded, [(rel.clone(), vec![2, 3, 4])]);

    let (_keep, uploaded) = restart_on(torn.path()).await;
    assert_eq!(uploaded, [(rel.clone(), vec![2, 3])], "the cut-off batch is dropped, the rest kept");

    let (_keep, uploaded) = restart_on(empty.path()).await;
    assert!(uploaded.is_empty(), "{uploaded:?}");
}

#[tokio::test]
async fn a_segment_sealed_but_not_uploaded_is_uploaded_at_the_next_start() {
    // A clean shutdown that could not reach the store leaves a complete stream behind.
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let (_, log) = start(dir.path(), config(dir.path()));
    log.record(entry("d", LEAP_DAY_US, 2, vec![f32s("x", 2)]));
    let paths = log.flush().await.unwrap();
    assert_eq!(paths.len(), 1);
    assert!(segment_files(&spool).is_empty(), "an uploaded segment leaves the spool");
    // Put the uploaded segment back where the spool would have kept it: as a sealed stream.
    let uploaded = std::fs::read(dir.path().join("artifacts").join(&paths[0])).unwrap();
    let reader = arrow_ipc::reader::FileReader::try_new(std::io::Cursor::new(uploaded), None).unwrap();
    let sealed = tempfile::tempdir().unwrap();
    let spooled = paths[0].replace(".arrow", ".arrows");
    let target = spooled.split('/').fold(sealed.path().to_path_buf(), |p, s| p.join(s));
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(std::fs::File::create(&target).unwrap(), &reader.schema()).unwrap();
    for batch in reader {
        writer.write(&batch.unwrap()).unwrap();
    }
    writer.finish().unwrap();
    std::fs::write(target.with_extension("arrows.tmp"), b"half a rewrite").unwrap();

    let (_keep, uploaded) = restart_on(sealed.path()).await;
    assert_eq!(uploaded, [(paths[0].clone(), vec![2])]);
}
