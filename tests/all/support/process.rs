//! `codemode serve` as a separate process, as an operator runs it.

use std::path::Path;

/// `codemode serve` as a process, with a config file and a database that outlive it.
pub struct Codemode {
    child: std::process::Child,
    pub base: String,
}

impl Codemode {
    pub fn start(config: &Path, db: &Path) -> Codemode {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_codemode"))
            .args(["serve", "--port", "0", "--log-json", "--config"])
            .arg(config)
            .arg("--db")
            .arg(db)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("codemode serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let address = loop {
            let line = lines.next().expect("codemode logs").expect("a line");
            let Ok(log) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if log["fields"]["message"] == "codemode is listening" {
                break log["fields"]["address"]
                    .as_str()
                    .expect("address")
                    .to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let port = address.rsplit(':').next().expect("port");
        Codemode {
            child,
            base: format!("http://localhost:{port}"),
        }
    }

    /// Kills it at once (as a crash would).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it as an operator would, with SIGTERM, and waits for it to exit.
    pub fn terminate(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Codemode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
