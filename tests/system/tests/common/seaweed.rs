//! SeaweedFS as the tests' S3 store.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use super::{Process, free_port, servers_bin, wait_for};

/// SeaweedFS's all-in-one server with an S3 endpoint and a bucket.
pub struct Seaweed {
    pub s3_port: u16,
    pub bucket: String,
    _process: Process,
}

pub const S3_KEY: &str = "avatar-test-key";
pub const S3_SECRET: &str = "avatar-test-secret";

impl Seaweed {
    pub fn start(dir: &Path) -> Self {
        // Six ports in a row plus their gRPC twins (+10000) must be free.
        let base = loop {
            let p = 20000 + (free_port() % 20000);
            let free = (0..6).all(|i| {
                TcpListener::bind(("127.0.0.1", p + i)).is_ok()
                    && TcpListener::bind(("127.0.0.1", p + i + 10000)).is_ok()
            });
            if free {
                break p;
            }
        };
        let bucket = "avatar-audio".to_string();
        let data = dir.join("weed");
        std::fs::create_dir_all(&data).unwrap();
        let env: HashMap<String, String> = [
            ("AWS_ACCESS_KEY_ID", S3_KEY),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
            ("S3_BUCKET", bucket.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let port = |i: u16| (base + i).to_string();
        let args = [
            "mini".to_string(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-master.port={}", port(0)),
            format!("-volume.port={}", port(1)),
            format!("-filer.port={}", port(2)),
            format!("-s3.port={}", port(3)),
            format!("-webdav.port={}", port(4)),
            format!("-admin.port={}", port(5)),
            "-admin.ui=false".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = Process::spawn("seaweedfs", &servers_bin().join("weed"), &args, &env, dir);
        let weed = Self {
            s3_port: base + 3,
            bucket,
            _process: process,
        };
        weed.wait_ready();
        weed
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn storage_env(&self) -> Vec<(String, String)> {
        [
            ("STORAGE_BACKEND", "s3".to_string()),
            ("S3_ENDPOINT", self.endpoint()),
            ("S3_BUCKET", self.bucket.clone()),
            ("S3_ACCESS_KEY_ID", S3_KEY.into()),
            ("S3_SECRET_ACCESS_KEY", S3_SECRET.into()),
            ("S3_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Until a real, signed S3 put succeeds.
    fn wait_ready(&self) {
        let config = avatar_runtime::config::StorageConfig::S3 {
            endpoint: Some(self.endpoint()),
            region: "us-east-1".into(),
            bucket: self.bucket.clone(),
            access_key_id: Some(S3_KEY.into()),
            secret_access_key: Some(S3_SECRET.into()),
            path_style: true,
            allow_http: true,
        };
        let store = avatar_runtime::storage::open(&config).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ready = wait_for(Duration::from_secs(60), || {
            runtime.block_on(async {
                use object_store::ObjectStoreExt;
                store
                    .put(
                        &object_store::path::Path::from("ready"),
                        b"ok".to_vec().into(),
                    )
                    .await
                    .is_ok()
            })
        });
        assert!(ready.is_some(), "SeaweedFS S3 did not come up");
    }
}
