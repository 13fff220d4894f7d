//! Debian's headless Chromium, driven through its chromedriver over WebDriver (fantoccini), and
//! the service it browses: `codemode::server::serve` on a loopback socket with a real store.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use codemode::app::{App, StoreChoice};
use codemode::config::Config;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long a page may take to show what a test waits for (a stdio server starting under a
/// loaded CI machine included). A wait polls the page; it never sleeps a fixed time.
const PATIENCE: Duration = Duration::from_secs(60);

/// The service on `127.0.0.1:<free port>` with `config`, its database in a directory that
/// lives as long as the returned guard.
pub async fn serve(config: Value) -> (String, Arc<App>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = Config::parse(&config.to_string()).expect("valid config");
    let app = Arc::new(
        App::build(&config, StoreChoice::Sqlite(dir.path().join("codemode.db")))
            .await
            .expect("the service builds"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(codemode::server::serve(
        listener,
        Arc::clone(&app),
        std::future::pending(),
    ));
    (base, app, dir)
}

/// A headless Chromium session at 1280×800, and the chromedriver serving it.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Browser {
    pub async fn start() -> Browser {
        let mut driver = Command::new(executable("CHROMEDRIVER", "chromedriver"))
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts: the README's test command installs it");
        let stdout = driver.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        // "ChromeDriver was started successfully on port 41234."
        let port = loop {
            let line = lines
                .next()
                .expect("chromedriver says where it listens")
                .expect("a line");
            if let Some(rest) = line
                .strip_prefix("ChromeDriver was started successfully")
                .and_then(|line| line.split("on port ").nth(1))
            {
                break rest.trim_end_matches('.').trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": executable("CHROME_BIN", "chromium"),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,800"],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Browser { client, driver }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigates");
    }

    /// The path of the page shown now.
    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("url")
            .path()
            .to_string()
    }

    /// The element `css` selects, now.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    /// The first element `xpath` selects, once there is one.
    pub async fn wait_for(&self, xpath: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(xpath))
            .await
            .unwrap_or_else(|e| panic!("waited for {xpath}: {e}"))
    }

    /// Types `text` into the field `css` selects, after clearing it.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clears");
        field.send_keys(text).await.expect("types");
    }

    /// Presses Enter in the field `css` selects (a form's implicit submission).
    pub async fn press_enter(&self, css: &str) {
        let key = fantoccini::key::Key::Enter.to_string();
        self.find(css).await.send_keys(&key).await.expect("enter");
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("clicks");
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    /// Runs `script` in the page and answers its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Saves the page as `<name>.png` in the screenshots folder.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshots folder");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot saved");
    }

    /// Ends the session (Chromium quits), then the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `CODEMODE_UI_SCREENSHOTS` (the docs regenerate `docs/ui/` with it), else a folder under
/// `target/`, so every run exercises the screenshots.
fn screenshot_dir() -> PathBuf {
    match std::env::var_os("CODEMODE_UI_SCREENSHOTS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots"),
    }
}

/// The program `variable` names, else `default` as found on the PATH (chromedriver wants the
/// browser's full path).
fn executable(variable: &str, default: &str) -> String {
    if let Ok(program) = std::env::var(variable) {
        return program;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(default))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("{default} is not installed: the README's test command installs it")
        })
        .display()
        .to_string()
}
