//! Loopback plumbing for the fakes: a throw-away PKI, a TLS server for any handler, a plain
//! HTTP server, and an HTTPS CONNECT proxy that sends production-looking host names
//! (`management.azure.test`, `myvault.vault.azure.test`, `api.github.test`) to the fakes.
//! The handler reaches them through `HTTPS_PROXY` and trusts the CA through `SSL_CERT_FILE`,
//! exactly as it would a corporate proxy and a private CA; nothing in the binary knows.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::{
    self,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};
use tokio_rustls::TlsAcceptor;
use warp::Filter;

pub struct Pki {
    pub ca_pem: String,
    leaf_der: Vec<u8>,
    leaf_key_der: Vec<u8>,
}

/// A CA and one leaf certificate for `names`.
pub fn make_pki(names: &[&str]) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "aci-runners test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        leaf_der: leaf.der().to_vec(),
        leaf_key_der: leaf_key.serialize_der(),
    }
}

/// One request as a fake sees it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// An answer from a fake.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(status: u16, body: serde_json::Value) -> Resp {
        Resp {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            headers: vec![],
            body: String::new(),
        }
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Resp {
        self.headers.push((k.into(), v.into()));
        self
    }
}

pub type Handler = Arc<dyn Fn(Req) -> Resp + Send + Sync>;

/// Latency added before a fake answers (benchmarks): none, a fixed time, or a rule by method
/// and path (ARM's PUT slower than its GET, say).
#[derive(Clone, Default)]
pub struct Delay(Arc<std::sync::RwLock<Option<DelayRule>>>);

type DelayRule = Arc<dyn Fn(&str, &str) -> Duration + Send + Sync>;

impl Delay {
    /// Every answer after `d`.
    pub fn fixed(&self, d: Duration) {
        self.set(move |_, _| d);
    }

    /// Each answer after `rule(method, path)`.
    pub fn set(&self, rule: impl Fn(&str, &str) -> Duration + Send + Sync + 'static) {
        *self.0.write().unwrap() = Some(Arc::new(rule));
    }

    fn of(&self, method: &str, path: &str) -> Duration {
        self.0.read().unwrap().as_ref().map_or(Duration::ZERO, |r| r(method, path))
    }
}

fn filter(h: Handler, delay: Delay) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    warp::any()
        .and(warp::method())
        .and(warp::path::full())
        .and_then(move |m: warp::http::Method, p: warp::path::FullPath| {
            let wait = delay.of(m.as_str(), p.as_str());
            async move {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                Ok::<_, std::convert::Infallible>((m, p))
            }
        })
        .untuple_one()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(
            move |m: warp::http::Method, p: warp::path::FullPath, q: String, hs: warp::http::HeaderMap, body: Bytes| {
                let headers = hs
                    .iter()
                    .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                let r = h(Req {
                    method: m.to_string(),
                    path: p.as_str().to_string(),
                    query: q,
                    headers,
                    body,
                });
                let mut resp = warp::reply::Response::new(r.body.into());
                *resp.status_mut() = warp::http::StatusCode::from_u16(r.status).unwrap();
                for (k, v) in r.headers {
                    resp.headers_mut()
                        .insert(warp::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
                }
                resp
            },
        )
        .boxed()
}

/// Serves `h` over TLS on 127.0.0.1:<ephemeral>.
pub async fn serve_tls(h: Handler, pki: &Pki) -> SocketAddr {
    serve_tls_delayed(h, pki, Delay::default()).await
}

/// Serves `h` over TLS, answering each request after `delay`.
pub async fn serve_tls_delayed(h: Handler, pki: &Pki, delay: Delay) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(pki.leaf_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.leaf_key_der.clone())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let f = filter(h, delay);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            let f = f.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let svc = hyper_util::service::TowerToHyperService::new(warp::service(f));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

/// Serves `h` over plain HTTP on 127.0.0.1:<ephemeral>.
pub async fn serve_http(h: Handler) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(filter(h, Delay::default())).incoming(listener).run());
    addr
}

/// An HTTPS CONNECT proxy mapping host names to loopback fakes. A host it does not know is
/// refused (502) and remembered, so a test can assert nothing tried to leave the bench.
pub struct Proxy {
    pub addr: SocketAddr,
    pub refused: Arc<Mutex<Vec<String>>>,
}

pub async fn connect_proxy(routes: HashMap<String, SocketAddr>) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refused: Arc<Mutex<Vec<String>>> = Default::default();
    let routes = Arc::new(routes);
    let r2 = refused.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let routes = routes.clone();
            let refused = r2.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(tcp);
                let mut first = String::new();
                if reader.read_line(&mut first).await.is_err() {
                    return;
                }
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l).await.unwrap_or(0) == 0 || l == "\r\n" {
                        break;
                    }
                }
                let authority = first.split_whitespace().nth(1).unwrap_or("").to_string();
                let host = authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(&authority).to_string();
                let mut tcp = reader.into_inner();
                match routes.get(&host) {
                    Some(target) => {
                        let Ok(mut upstream) = TcpStream::connect(target).await else {
                            return;
                        };
                        let _ = tcp.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await;
                        let _ = tokio::io::copy_bidirectional(&mut tcp, &mut upstream).await;
                    }
                    None => {
                        refused.lock().unwrap().push(authority);
                        let _ = tcp.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n").await;
                    }
                }
            });
        }
    });
    Proxy { addr, refused }
}
