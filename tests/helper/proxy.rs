//! A TCP proxy between dms and a real server that injects network faults into the answers:
//! latency, connections cut mid-response, stalls without closing, truncated bodies. The mode
//! can change while connections are open.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What happens to answers flowing back from the server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Pass everything through.
    None,
    /// Delay every chunk of the answer.
    Latency(Duration),
    /// Close both sides after this many bytes of the answer.
    Cut(usize),
    /// Stop forwarding the answer after this many bytes, keeping the connection open.
    Stall(usize),
    /// Forward this many bytes of the answer, then close only the client side's write half
    /// (the client sees a truncated body and EOF).
    Truncate(usize),
}

pub struct Proxy {
    pub url: String,
    fault: Arc<Mutex<Fault>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fault = Arc::new(Mutex::new(Fault::None));
        let f = fault.clone();
        let upstream = upstream.to_string();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let f = f.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        relay(client, server, f).await;
                    }
                });
            }
        });
        Proxy { url, fault, task }
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, fault: Arc<Mutex<Fault>>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut sent = 0usize;
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let f = *fault.lock().unwrap();
            match f {
                Fault::None => {}
                Fault::Latency(d) => tokio::time::sleep(d).await,
                Fault::Cut(limit) | Fault::Stall(limit) | Fault::Truncate(limit) => {
                    if sent + n > limit {
                        let keep = limit.saturating_sub(sent);
                        let _ = cw.write_all(&buf[..keep]).await;
                        match f {
                            Fault::Stall(_) => {
                                // Hold the connection open, sending nothing.
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                            }
                            Fault::Truncate(_) => {
                                let _ = cw.shutdown().await;
                            }
                            _ => {}
                        }
                        return;
                    }
                }
            }
            sent += n;
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    // Cutting drops both halves when `down` returns first.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}
