//! Helpers of the end-to-end tests: start the real headless Godot server (`scripts/godot` on a
//! scene of `godot/`, or an exported server), and talk to it as an independent client would, with
//! raw WebSocket frames and JSON following `rust/protocol/PROTOCOL.md`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A fresh, empty folder under `target/e2e-tmp/` for one test's files (e.g. a data directory).
pub fn fresh_dir(name: &str) -> PathBuf {
    let dir = repo_root()
        .join("target/e2e-tmp")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    dir
}

/// The object named `name` (its `properties.name`) in a JSON array of object states.
pub fn named<'a>(objects: &'a Value, name: &str) -> Option<&'a Value> {
    objects
        .as_array()?
        .iter()
        .find(|o| o["properties"]["name"] == name)
}

/// The position of object `id` in a JSON array of object states (NaN for a missing coordinate).
pub fn position_of(objects: &Value, id: u64) -> Option<[f64; 3]> {
    objects
        .as_array()?
        .iter()
        .find(|o| o["id"].as_u64() == Some(id))
        .map(|o| {
            let p = &o["position"];
            [
                p[0].as_f64().unwrap_or(f64::NAN),
                p[1].as_f64().unwrap_or(f64::NAN),
                p[2].as_f64().unwrap_or(f64::NAN),
            ]
        })
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.1, the server closes): the status line and the body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    http_get_at(&format!("127.0.0.1:{port}"), path)
}

/// `GET path` on `address` (`host:port`), as [`http_get`].
pub fn http_get_at(address: &str, path: &str) -> std::io::Result<(String, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_string();
    Ok((status, body.to_string()))
}

/// A running headless server process; killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    /// The port it serves on.
    pub port: u16,
    /// Lines it printed (stdout and stderr), collected in the background.
    lines: mpsc::Receiver<String>,
    /// Everything read from `lines` so far.
    pub log: Vec<String>,
}

impl Server {
    /// Starts `scripts/godot --headless --path godot SCENE -- ARGS` and waits until it listens.
    pub fn start_scene(scene: &str, port: u16, extra: &[&str]) -> Server {
        Self::spawn(scene_command(scene, port, extra), port)
    }

    /// The server's process id (Godot's own: the scripts exec it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts an exported server (`DIR/run-server`) and waits until it listens.
    pub fn start_exported(dir: &Path, port: u16, extra: &[&str]) -> Server {
        let mut command = Command::new(dir.join("run-server"));
        command
            .arg("--dev")
            .arg(format!("--port={port}"))
            .args(extra);
        Self::spawn(command, port)
    }

    /// Starts `command` (a server serving `port`) and waits until its campaign is open.
    pub fn start(command: Command, port: u16) -> Server {
        Self::spawn(command, port)
    }

    fn spawn(mut command: Command, port: u16) -> Server {
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = command.spawn().expect("the server starts");
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut server = Server {
            child,
            port,
            lines,
            log: Vec::new(),
        };
        server.wait_for_line("listening on ws://", Duration::from_secs(120));
        // The gateway listens before the world has loaded and opened its campaign.
        server.wait_for_line("campaign open, clients may join", Duration::from_secs(60));
        server
    }

    /// Waits for a printed line containing `needle`; panics with the log on timeout or exit.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(line) = self.log.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        self.drain();
                        panic!(
                            "the server exited ({status}) before printing {needle:?}:\n{}",
                            self.log.join("\n")
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        self.drain();
        panic!(
            "the server did not print {needle:?} in {timeout:?}:\n{}",
            self.log.join("\n")
        );
    }

    /// Collects the lines printed so far.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
    }

    /// The ws:// URL of the server.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Kills the process with SIGKILL (a crash) and waits for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.drain();
    }

    /// Asks the process to quit cleanly (SIGTERM) and waits up to `timeout`; returns its exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.drain();
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` until it exits (killed after `timeout`); its exit code (None when killed or
/// ended by a signal) and everything it printed, stdout and stderr together.
pub fn run_to_exit(mut command: Command, timeout: Duration) -> (Option<i32>, String) {
    let out = std::env::temp_dir().join(format!(
        "nexus-e2e-run-{}-{}.log",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let file = std::fs::File::create(&out).expect("a log file");
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file);
    let mut child = command.spawn().expect("the command starts");
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    (code, log)
}

/// `scripts/godot --headless --path godot SCENE -- --dev --port=PORT EXTRA...`, not started.
pub fn scene_command(scene: &str, port: u16, extra: &[&str]) -> Command {
    let root = repo_root();
    let mut command = Command::new(root.join("scripts/godot"));
    command
        .current_dir(&root)
        .args(["--headless", "--path", "godot", scene, "--", "--dev"]);
    command.arg(format!("--port={port}")).args(extra);
    command
}

/// A raw JSON WebSocket client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every event received, in order.
    pub received: Vec<Value>,
}

impl Client {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = connect_async(url)
            .await
            .expect("the WebSocket handshake succeeds");
        Client {
            ws,
            received: Vec::new(),
        }
    }

    /// Sends one event envelope.
    pub async fn send(&mut self, r#type: &str, campaign: &str, payload: Value) {
        let event = json!({"type": r#type, "payload": payload,
            "metadata": {"campaign_id": campaign, "entity_type": "player", "client_type": "e2e"}});
        self.ws
            .send(Message::text(event.to_string()))
            .await
            .expect("send");
    }

    /// Joins `campaign` with `token` and returns the welcome payload.
    pub async fn join(&mut self, campaign: &str, token: &str) -> Value {
        self.send(
            "session:join:v1:requested",
            campaign,
            json!({"token": token}),
        )
        .await;
        let welcome = self
            .expect("session:welcome:v1:stream", Duration::from_secs(10))
            .await;
        welcome["payload"].clone()
    }

    /// The next event of type `wanted` (others are kept in `received`); panics on timeout.
    pub async fn expect(&mut self, wanted: &str, timeout: Duration) -> Value {
        match self.next_matching(|e| e["type"] == wanted, timeout).await {
            Some(event) => event,
            None => {
                let errors: Vec<&Value> = self
                    .received
                    .iter()
                    .filter(|e| e["type"] == "system:error:v1:stream")
                    .collect();
                panic!(
                    "no {wanted} within {timeout:?}; received types: {:?}; errors: {errors:?}",
                    self.types()
                )
            }
        }
    }

    /// The next event satisfying `predicate`, or `None` after `timeout`.
    pub async fn next_matching(
        &mut self,
        predicate: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            let text = match frame.ok()? {
                Message::Text(text) => text.to_string(),
                Message::Close(_) => return None,
                _ => continue,
            };
            let event: Value = serde_json::from_str(&text).expect("the server sends JSON text");
            self.received.push(event.clone());
            if predicate(&event) {
                return Some(event);
            }
        }
    }

    /// The types of every event received so far.
    pub fn types(&self) -> Vec<String> {
        self.received
            .iter()
            .map(|e| e["type"].as_str().unwrap_or("?").to_string())
            .collect()
    }
}

/// A small tmpfs mounted for one test (needs root); unmounted when dropped.
pub struct SmallDisk {
    pub path: std::path::PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `megabytes` at a fresh directory, or says why it cannot.
    pub fn mount(name: &str, megabytes: u32) -> Result<SmallDisk, String> {
        let path = fresh_dir(name).join("disk");
        std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&path)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
        }
        Ok(SmallDisk { path })
    }

    /// Writes a filler file until the disk is full; returns how many bytes it took.
    pub fn fill(&self) -> u64 {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path.join("filler")).expect("a filler file");
        let chunk = vec![0xA5u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        let _ = file.sync_all();
        written
    }

    pub fn free(&self) {
        std::fs::remove_file(self.path.join("filler")).expect("the filler goes");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// An ext4 image on a loop device that can fail like a real disk: `abort` turns it read-only
/// for every write, even through files already open (what ext4 does after an I/O error).
pub struct LoopDisk {
    pub path: std::path::PathBuf,
    image: std::path::PathBuf,
}

impl LoopDisk {
    pub fn mount(name: &str, megabytes: u64) -> Result<LoopDisk, String> {
        let dir = fresh_dir(name);
        let disk = LoopDisk {
            path: dir.join("disk"),
            image: dir.join("disk.img"),
        };
        std::fs::create_dir_all(&disk.path).map_err(|e| e.to_string())?;
        std::fs::File::create(&disk.image)
            .and_then(|f| f.set_len(megabytes << 20))
            .map_err(|e| e.to_string())?;
        sh(
            "mkfs.ext4",
            &["-q".as_ref(), "-F".as_ref(), disk.image.as_os_str()],
        )?;
        disk.attach()?;
        Ok(disk)
    }

    fn attach(&self) -> Result<(), String> {
        sh(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                self.image.as_os_str(),
                self.path.as_os_str(),
            ],
        )
    }

    pub fn abort(&self) {
        sh(
            "mount",
            &[
                "-o".as_ref(),
                "remount,abort".as_ref(),
                self.path.as_os_str(),
            ],
        )
        .expect("ext4 takes the abort option");
    }

    /// Unmounts the failed disk, repairs it with fsck and mounts it again at the same place.
    pub fn repair(&self) {
        sh("umount", &["-l".as_ref(), self.path.as_os_str()]).expect("umount");
        // Exit code 1 means e2fsck fixed something, which is expected after an abort.
        let fsck = std::process::Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(&self.image)
            .output()
            .expect("e2fsck runs");
        assert!(
            fsck.status.code().is_some_and(|code| code <= 1),
            "e2fsck: {}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        self.attach().expect("the repaired disk mounts");
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

fn sh(program: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// `/health` as JSON.
pub fn health(port: u16) -> serde_json::Value {
    let (status, body) = http_get(port, "/health").expect("/health answers");
    assert!(status.contains("200"), "{status}");
    serde_json::from_str(&body).expect("/health is JSON")
}

/// Polls `/health` until `predicate` holds (at most `timeout`); the last report either way.
pub async fn wait_health(
    port: u16,
    timeout: Duration,
    predicate: impl Fn(&serde_json::Value) -> bool,
) -> (bool, serde_json::Value) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let report = health(port);
        if predicate(&report) {
            return (true, report);
        }
        if std::time::Instant::now() > deadline {
            return (false, report);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `persistence` report of `campaign` in a `/health` report (null when absent).
pub fn campaign_persistence(report: &serde_json::Value, campaign: &str) -> serde_json::Value {
    report["campaigns"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == campaign))
        .map(|c| c["persistence"].clone())
        .unwrap_or_default()
}

/// A PostgreSQL server of its own for one test (`scripts/postgres`, installed on first use):
/// its own data directory and port, so the test may stop and restart it.
pub struct Postgres {
    pub port: u16,
    data: PathBuf,
}

impl Postgres {
    pub fn start(name: &str) -> Postgres {
        let postgres = Postgres {
            port: free_port(),
            data: fresh_dir(&format!("pg-{name}")),
        };
        postgres.run(&["start"]);
        postgres
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new(repo_root().join("scripts/postgres"))
            .args(args)
            .arg(format!("--port={}", self.port))
            .arg(format!("--data={}", self.data.display()))
            .output()
            .expect("run scripts/postgres");
        assert!(
            output.status.success(),
            "scripts/postgres {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// The URL of the `nexus` database.
    pub fn url(&self) -> String {
        format!("postgres://nexus@127.0.0.1:{}/nexus", self.port)
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn stop(&self) {
        self.run(&["stop"]);
    }

    /// Starts it again on the same data.
    pub fn restart(&self) {
        self.run(&["start"]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/postgres"))
            .args(["stop", &format!("--data={}", self.data.display())])
            .output();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
