//! Debian's nginx in front of the gateway, as deployed: a site file from `deploy/` with its names, ports and
//! certificate paths replaced, a self-signed certificate made by openssl, and a TLS client that trusts it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

/// An nginx process in the foreground; killed when dropped.
pub struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx is not installed (scripts/test installs Debian's `nginx`)")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A self-signed certificate for `localhost` and 127.0.0.1 (not a CA, so it can be its own trust anchor):
/// `cert.pem` and `key.pem` in `dir`.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

/// `deploy/<file>` with its listeners on 127.0.0.1 ports, the certificate in `dir`, the name `localhost`, and
/// `upstreams` replaced; every replaced text must be in the file, so the test follows the deployed config.
pub fn site_config(file: &str, dir: &Path, https_port: u16, http_port: u16, upstreams: &[(&str, String)]) -> String {
    let mut site = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(file)).unwrap();
    let mut replacements: Vec<(&str, String)> = upstreams.to_vec();
    replacements.extend([
        ("listen 443 ssl http2;", format!("listen 127.0.0.1:{https_port} ssl http2;")),
        ("listen [::]:443 ssl http2;", String::new()),
        ("listen 80;", format!("listen 127.0.0.1:{http_port};")),
        ("listen [::]:80;", String::new()),
        ("/etc/letsencrypt/live/presence.example.org/fullchain.pem", dir.join("cert.pem").display().to_string()),
        ("/etc/letsencrypt/live/presence.example.org/privkey.pem", dir.join("key.pem").display().to_string()),
        ("presence.example.org", "localhost".to_owned()),
    ]);
    for (from, to) in replacements {
        assert!(site.contains(from), "deploy/{file} no longer has `{from}`");
        site = site.replace(from, &to);
    }
    site
}

/// Starts nginx on `site` inside what Debian's /etc/nginx/nginx.conf provides around a site, every path in
/// `dir`; the access log (`dir/access.log`) names the upstream of each request.
pub fn start_nginx(dir: &Path, site: &str) -> Nginx {
    std::fs::write(dir.join("site.conf"), site).unwrap();
    let d = dir.display();
    let main = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\nhttp {{\n\
         log_format upstreams '$request_method $uri $status $upstream_addr';\naccess_log {d}/access.log upstreams;\n\
         client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\ninclude {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let child = Command::new(nginx_binary())
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off; master_process off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx");
    Nginx(child)
}

/// A rustls client trusting exactly `cert_pem`.
pub fn tls_config(cert_pem: &str) -> Arc<rustls::ClientConfig> {
    let der = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        cert_pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>(),
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(der)).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}
