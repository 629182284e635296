#![allow(dead_code)]
//! A small fault-injecting HTTP proxy in front of moto: errors for the first
//! N requests, dropped connections, slow answers. It reads each request
//! whole (headers and Content-Length body), decides, and either answers
//! itself or forwards the request to moto on a fresh connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// HTTP 500 with an AWS InternalFailure body.
    ServerError,
    /// HTTP 400 ThrottlingException.
    Throttle,
    /// Close the connection without answering.
    Drop,
    /// Wait this long, then forward.
    Slow(Duration),
}

pub struct Proxy {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
    pub faults_injected: Arc<AtomicUsize>,
    /// The KMS operation of every request (the `X-Amz-Target` suffix, such
    /// as `Sign`), in order; only [`start_targeted`] records them.
    pub targets: Arc<std::sync::Mutex<Vec<String>>>,
    /// The KMS operation and the `kaws:file` of its encryption context, for
    /// every request that has one (only [`start_targeted`] records them).
    pub contexts: Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Proxy {
    /// How many requests were for the KMS operation `target` (`Sign`).
    pub fn count(&self, target: &str) -> usize {
        self.targets
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.as_str() == target)
            .count()
    }
}

/// The `kaws:file` of a KMS request's encryption context, if it has one.
fn kaws_file(req: &[u8]) -> Option<String> {
    let at = req.windows(4).position(|w| w == b"\r\n\r\n")?;
    let body: serde_json::Value = serde_json::from_slice(&req[at + 4..]).ok()?;
    Some(body["EncryptionContext"]["kaws:file"].as_str()?.to_string())
}

/// The KMS operation a request names (`X-Amz-Target: TrentService.Sign`).
fn kms_target(req: &[u8]) -> String {
    String::from_utf8_lossy(req)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("x-amz-target")
                .then(|| v.trim().rsplit('.').next().unwrap_or("").to_string())
        })
        .unwrap_or_default()
}

/// Start a proxy to `upstream` that records the KMS operation of every
/// request and applies `fault` to the first `count` requests for the
/// operation `target` (usize::MAX: all of them); everything else goes to
/// moto.
pub fn start_targeted(upstream: &str, target: &str, fault: Fault, count: usize) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let faults_injected = Arc::new(AtomicUsize::new(0));
    let targets = Arc::new(std::sync::Mutex::new(Vec::new()));
    let contexts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (r, f, t, c) = (
        requests.clone(),
        faults_injected.clone(),
        targets.clone(),
        contexts.clone(),
    );
    let upstream = upstream.to_string();
    let target = target.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let c = c.clone();
            let (r, f, t, upstream, target) = (
                r.clone(),
                f.clone(),
                t.clone(),
                upstream.clone(),
                target.clone(),
            );
            std::thread::spawn(move || {
                let mut writer = conn.try_clone().unwrap();
                let mut reader = BufReader::new(conn);
                while let Some(req) = read_request(&mut reader) {
                    r.fetch_add(1, Ordering::SeqCst);
                    let op = kms_target(&req);
                    t.lock().unwrap().push(op.clone());
                    if let Some(file) = kaws_file(&req) {
                        c.lock().unwrap().push((op.clone(), file));
                    }
                    let faulty = op == target && f.load(Ordering::SeqCst) < count && {
                        f.fetch_add(1, Ordering::SeqCst);
                        true
                    };
                    let Some(answer) = answer(faulty, fault, &upstream, &req) else {
                        return;
                    };
                    if writer.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Proxy {
        url,
        requests,
        faults_injected,
        targets,
        contexts,
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        head.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    head.extend(body);
    Some(head)
}

fn forward(upstream: &str, request: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(upstream).ok()?;
    s.write_all(request).ok()?;
    let mut reader = BufReader::new(s);
    let mut head = Vec::new();
    let mut len = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().ok();
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        head.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            break;
        }
    }
    if chunked {
        // Rare with moto; read to the end of the stream.
        reader.read_to_end(&mut head).ok()?;
    } else {
        let mut body = vec![0; len.unwrap_or(0)];
        reader.read_exact(&mut body).ok()?;
        head.extend(body);
    }
    Some(head)
}

/// What the proxy answers a request: `fault` when it is `faulty`, else
/// moto's answer; `None` closes the connection (a dropped request, or moto
/// gone).
fn answer(faulty: bool, fault: Fault, upstream: &str, req: &[u8]) -> Option<Vec<u8>> {
    match (faulty, fault) {
        (true, Fault::ServerError) => Some(error_response(
            "500 Internal Server Error",
            "KMSInternalException",
        )),
        (true, Fault::Throttle) => Some(error_response("400 Bad Request", "ThrottlingException")),
        (true, Fault::Drop) => None,
        (true, Fault::Slow(d)) => {
            std::thread::sleep(d);
            forward(upstream, req)
        }
        (false, _) => forward(upstream, req),
    }
}

fn error_response(status: &str, code: &str) -> Vec<u8> {
    let body = format!("{{\"__type\":\"{code}\",\"message\":\"injected by the test proxy\"}}");
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-ErrorType: {code}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Start a proxy to `upstream` (host:port) that applies `fault` to the
/// first `count` requests (usize::MAX: all of them).
pub fn start(upstream: &str, fault: Fault, count: usize) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let faults_injected = Arc::new(AtomicUsize::new(0));
    let (r, f) = (requests.clone(), faults_injected.clone());
    let upstream = upstream.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (r, f, upstream) = (r.clone(), f.clone(), upstream.clone());
            std::thread::spawn(move || {
                let mut writer = conn.try_clone().unwrap();
                let mut reader = BufReader::new(conn);
                while let Some(req) = read_request(&mut reader) {
                    let n = r.fetch_add(1, Ordering::SeqCst);
                    let faulty = n < count;
                    if faulty {
                        f.fetch_add(1, Ordering::SeqCst);
                    }
                    let Some(answer) = answer(faulty, fault, &upstream, &req) else {
                        return;
                    };
                    if writer.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Proxy {
        url,
        requests,
        faults_injected,
        targets: Default::default(),
        contexts: Default::default(),
    }
}

/// Start a proxy to `upstream` that answers every request for the KMS
/// operation `target` (the `X-Amz-Target` suffix, such as `Decrypt`) with
/// HTTP 400 and the error `code` and `message`, as real KMS does where moto
/// does not (moto decrypts under a disabled key); every other request goes
/// to moto.
pub fn start_refusing(upstream: &str, target: &str, code: &str, message: &str) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let faults_injected = Arc::new(AtomicUsize::new(0));
    let (r, f) = (requests.clone(), faults_injected.clone());
    let upstream = upstream.to_string();
    let header = format!(
        "x-amz-target: trentservice.{}\r\n",
        target.to_ascii_lowercase()
    );
    let body = format!(
        "{{\"__type\":\"{code}\",\"message\":{}}}",
        serde_json::to_string(message).unwrap()
    );
    let refusal = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-ErrorType: {code}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (r, f, upstream) = (r.clone(), f.clone(), upstream.clone());
            let (header, refusal) = (header.clone(), refusal.clone());
            std::thread::spawn(move || {
                let mut writer = conn.try_clone().unwrap();
                let mut reader = BufReader::new(conn);
                while let Some(req) = read_request(&mut reader) {
                    r.fetch_add(1, Ordering::SeqCst);
                    let refuse = String::from_utf8_lossy(&req)
                        .to_ascii_lowercase()
                        .contains(&header);
                    let answer = if refuse {
                        f.fetch_add(1, Ordering::SeqCst);
                        refusal.clone()
                    } else {
                        match forward(&upstream, &req) {
                            Some(a) => a,
                            None => return,
                        }
                    };
                    if writer.write_all(&answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Proxy {
        url,
        requests,
        faults_injected,
        targets: Default::default(),
        contexts: Default::default(),
    }
}
