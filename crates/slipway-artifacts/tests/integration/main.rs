//! The artifact-root suite, written once against `Artifacts` and instantiated per backend by
//! `artifact_suite!`: local disk, and an S3-protocol server (`scripts/s3.sh` starts moto and
//! exports its endpoint, credentials and `SLIPWAY_TEST_S3_BUCKET`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use bytes::Bytes;
use futures::TryStreamExt;
use slipway_artifacts::{ArtifactError, ArtifactPath, Artifacts, Entry, Removal, sanitize};

/// A fresh, empty root, with the directory a local one lives in.
pub struct Fixture {
    pub art: Artifacts,
    _dir: Option<tempfile::TempDir>,
}

pub fn local_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let art = Artifacts::open(&dir.path().join("root").display().to_string()).expect("open local root");
    Fixture { art, _dir: Some(dir) }
}

/// A prefix of its own in the test bucket: tests run side by side without seeing each other.
pub fn s3_fixture() -> Fixture {
    let bucket = std::env::var("SLIPWAY_TEST_S3_BUCKET").expect(
        "SLIPWAY_TEST_S3_BUCKET is not set: run scripts/test.sh, or `. scripts/s3.sh && slipway_s3_start` before \
         cargo test",
    );
    let uri = format!("s3://{bucket}/t-{}", uuid::Uuid::new_v4().simple());
    let art = Artifacts::open(&uri).expect("open S3 root");
    assert_eq!(art.uri(), uri);
    Fixture { art, _dir: None }
}

pub fn body(parts: Vec<Bytes>) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
    futures::stream::iter(parts.into_iter().map(Ok))
}

pub fn path(p: &str) -> ArtifactPath {
    sanitize(p).expect("valid path")
}

pub async fn read_all(art: &Artifacts, p: &str) -> Result<Vec<u8>, ArtifactError> {
    let download = art.get_stream(&path(p)).await?;
    let chunks: Vec<Bytes> = download.stream.try_collect().await?;
    let bytes = chunks.concat();
    assert_eq!(bytes.len() as u64, download.size, "the stream carries exactly the size announced");
    Ok(bytes)
}

/// Bytes that differ at every offset, so a part stitched in the wrong place shows.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 11)) as u8).collect()
}

#[macro_export]
macro_rules! artifact_suite {
    ($backend:ident, $fixture:path) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn put_get_list_delete_round_trip() {
                let f = $fixture();
                let p = path("1/run/artifacts/sub/file.bin");
                let parts = vec![Bytes::from_static(b"hello "), Bytes::from_static(b"world")];
                assert_eq!(f.art.put_stream(&p, body(parts)).await.unwrap(), 11);
                assert_eq!(read_all(&f.art, "1/run/artifacts/sub/file.bin").await.unwrap(), b"hello world");
                f.art.put_stream(&path("1/run/artifacts/top.txt"), body(vec![Bytes::from_static(b"t")])).await.unwrap();

                let listed = f.art.list(&path("1/run/artifacts")).await.unwrap();
                assert_eq!(
                    listed,
                    vec![
                        Entry { path: "1/run/artifacts/sub".into(), is_dir: true, size: None },
                        Entry { path: "1/run/artifacts/top.txt".into(), is_dir: false, size: Some(1) },
                    ]
                );
                assert_eq!(f.art.list(&path("1/nothing")).await.unwrap(), vec![]);

                assert_eq!(f.art.delete(&path("1/run")).await.unwrap(), 2);
                assert!(matches!(f.art.get_stream(&p).await, Err(ArtifactError::NotFound(_))));
                assert_eq!(f.art.delete(&path("1/run")).await.unwrap(), 0, "deleting nothing is not an error");
            }

            #[tokio::test]
            async fn multipart_upload_and_ranged_download_keep_every_byte() {
                let f = $fixture();
                // 20 MiB + 3 in uneven client chunks: three parts of 8 MiB, 8 MiB and the
                // rest, and five ranged reads of 4 MiB on the way back.
                let data = pattern((20 << 20) + 3);
                let parts: Vec<Bytes> = data.chunks(3 << 20 | 17).map(Bytes::copy_from_slice).collect();
                let n = f.art.put_stream(&path("big/model.onnx"), body(parts)).await.unwrap();
                assert_eq!(n, data.len() as u64);
                let back = read_all(&f.art, "big/model.onnx").await.unwrap();
                assert!(back == data, "downloaded bytes differ from the uploaded ones");
            }

            #[tokio::test]
            async fn an_empty_file_round_trips() {
                let f = $fixture();
                assert_eq!(f.art.put_stream(&path("e/empty"), body(vec![])).await.unwrap(), 0);
                assert_eq!(read_all(&f.art, "e/empty").await.unwrap(), b"");
            }

            #[tokio::test]
            async fn broken_upload_leaves_nothing() {
                let f = $fixture();
                let p = path("x/broken.bin");
                // More than a part has gone out before the client breaks off.
                let first = Bytes::from(pattern(9 << 20));
                let parts: Vec<Result<Bytes, std::io::Error>> =
                    vec![Ok(first), Err(std::io::Error::other("client went away"))];
                let err = f.art.put_stream(&p, futures::stream::iter(parts)).await.unwrap_err();
                assert!(matches!(err, ArtifactError::Upload(_)), "{err}");
                assert!(matches!(f.art.get_stream(&p).await, Err(ArtifactError::NotFound(_))));
                assert_eq!(f.art.list(&path("x")).await.unwrap(), vec![]);
            }

            #[tokio::test]
            async fn a_checked_upload_appears_only_with_the_promised_hash() {
                let f = $fixture();
                // One small body (a single put) and one over a part (a multipart upload).
                for len in [4096, (9 << 20) + 5] {
                    let data = pattern(len);
                    let hash: String = ring::digest::digest(&ring::digest::SHA256, &data)
                        .as_ref()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    let chunks = || data.chunks(1 << 20).map(Bytes::copy_from_slice).collect::<Vec<_>>();
                    let wrong = path(&format!("c/{len}/wrong"));
                    let other = "0".repeat(64);
                    let err = f.art.put_stream_checked(&wrong, body(chunks()), Some(&other)).await.unwrap_err();
                    assert!(err.to_string().contains("its name promises"), "{err}");
                    assert!(matches!(f.art.get_stream(&wrong).await, Err(ArtifactError::NotFound(_))), "{len}");
                    let right = path(&format!("c/{len}/right"));
                    assert_eq!(
                        f.art.put_stream_checked(&right, body(chunks()), Some(&hash)).await.unwrap(),
                        len as u64
                    );
                    assert!(read_all(&f.art, &format!("c/{len}/right")).await.unwrap() == data, "{len}");
                }
            }

            #[tokio::test]
            async fn an_overwrite_replaces_the_whole_object() {
                let f = $fixture();
                let p = path("o/file");
                f.art.put_stream(&p, body(vec![Bytes::from_static(b"a much longer first version")])).await.unwrap();
                f.art.put_stream(&p, body(vec![Bytes::from_static(b"short")])).await.unwrap();
                assert_eq!(read_all(&f.art, "o/file").await.unwrap(), b"short");
            }

            #[tokio::test]
            async fn remove_tree_keeps_protected_subtrees() {
                let f = $fixture();
                for p in [
                    "1/run/artifacts/model/MLmodel",
                    "1/run/artifacts/model/model.onnx",
                    "1/run/artifacts/model-old/x",
                    "1/run/artifacts/plot.png",
                    "1/other/x",
                ] {
                    f.art.put_stream(&path(p), body(vec![Bytes::from_static(b"12345")])).await.unwrap();
                }
                let run = path("1/run");
                let keep = [path("1/run/artifacts/model")];
                assert_eq!(f.art.remove_tree(&run, &keep, true).await.unwrap(), Removal { files: 2, bytes: 10 });
                assert!(read_all(&f.art, "1/run/artifacts/plot.png").await.is_ok(), "a dry run removes nothing");
                assert_eq!(f.art.remove_tree(&run, &keep, false).await.unwrap(), Removal { files: 2, bytes: 10 });
                assert!(read_all(&f.art, "1/run/artifacts/model/MLmodel").await.is_ok());
                assert!(read_all(&f.art, "1/run/artifacts/model-old/x").await.is_err(), "a sibling is not kept");
                assert!(read_all(&f.art, "1/other/x").await.is_ok());
                assert_eq!(f.art.remove_tree(&run, &keep, false).await.unwrap(), Removal::default());
            }

            #[tokio::test]
            async fn names_that_need_encoding_round_trip() {
                let f = $fixture();
                let name = "enc/a b+c%d=é.txt";
                let p = sanitize(&name.replace('%', "%25")).unwrap();
                f.art.put_stream(&p, body(vec![Bytes::from_static(b"ok")])).await.unwrap();
                let listed = f.art.list(&path("enc")).await.unwrap();
                assert_eq!(listed.len(), 1);
                assert_eq!(listed[0].path, name);
                let got: Vec<Bytes> = f.art.get_stream(&p).await.unwrap().stream.try_collect().await.unwrap();
                assert_eq!(got.concat(), b"ok");
            }

            #[tokio::test]
            async fn the_roots_own_uri_locates_its_objects() {
                let f = $fixture();
                let own = f.art.uri().to_string();
                f.art.put_stream(&path("7/r/artifacts/m"), body(vec![Bytes::from_static(b"m")])).await.unwrap();
                let located = f.art.locate(&format!("{own}/7/r/artifacts/m")).unwrap();
                assert_eq!(located, path("7/r/artifacts/m"));
                assert!(f.art.locate(&format!("{own}/7/../../x")).is_err());
                assert!(f.art.locate("s3://some-other-bucket/7/r").is_err());
            }
        }
    };
}

artifact_suite!(local, crate::local_fixture);
artifact_suite!(s3, crate::s3_fixture);
