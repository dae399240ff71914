//! The HTTP legacy source over TLS (`https-list://`), and the AWS SDK's clients over the same TLS
//! settings (`matbakh_aws::http`, which the migration's bucket and every function use): a local
//! HTTPS server with certificates
//! `openssl` makes here (a test authority; a certificate for `localhost` it signed, one for
//! another name it signed, one for `localhost` from an authority nobody trusts). The client
//! trusts what the system trusts, and `SSL_CERT_FILE` names the test authority as the system's
//! roots: the variable is the process's, so this is a test binary of its own, which sets it
//! before it starts any thread. No AWS stack needed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use migrate::egress::{HttpPolicy, Redirects};
use migrate::source::{HttpSource, ReadError, Source};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;

/// The server is on 127.0.0.1 (`localhost`): private addresses allowed, redirects not followed.
const LOCAL: HttpPolicy = HttpPolicy { redirects: Redirects::None, allow_private_addresses: true };

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian's openssl package) makes this test's certificates");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A new P-256 key, unencrypted (`openssl req`'s options).
const NEW_KEY: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

/// An authority `name`: its key and self-signed certificate (`name.key`, `name.pem`).
fn authority(dir: &Path, name: &str) {
    let (key, pem, subject) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN={name}"));
    let rest = ["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subject];
    openssl(dir, &[&["req", "-x509"][..], &NEW_KEY, &rest].concat());
}

/// A server certificate `name` for `san` (its subjectAltName), signed by the authority `ca`.
fn certificate(dir: &Path, name: &str, san: &str, ca: &str) {
    let (key, csr, pem, ext) =
        (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
    let subject = format!("/CN={name}");
    openssl(dir, &[&["req"][..], &NEW_KEY, &["-keyout", &key, "-out", &csr, "-subj", &subject]].concat());
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

/// Serves `body` at every path over TLS with the certificate `name` (ranges answered);
/// answers its port and how many requests got past the handshake.
async fn serve(dir: &Path, name: &str, body: Vec<u8>) -> (u16, Arc<AtomicUsize>) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join(format!("{name}.pem"))).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let counted = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, body, counted) = (acceptor.clone(), body.clone(), counted.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake here.
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Some(head) = testkit::read_request_head(&mut tls).await else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                let (status, part) = match head.range {
                    Some((from, to)) => ("206 Partial Content", &body[from..=to.min(body.len() - 1)]),
                    None => ("200 OK", &body[..]),
                };
                let head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", part.len());
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(part).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, served)
}

fn refusal(read: Result<Vec<u8>, ReadError>) -> String {
    match read {
        Err(ReadError::Unreadable(why)) => why,
        other => panic!("expected a refusal (unreadable: another attempt would be refused again), got {other:?}"),
    }
}

#[test]
fn https_reads_only_from_servers_whose_certificate_the_system_trusts() {
    let dir: PathBuf = std::env::temp_dir().join(format!("matbakh-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    authority(&dir, "test-ca");
    authority(&dir, "rogue-ca");
    certificate(&dir, "good", "DNS:localhost", "test-ca");
    certificate(&dir, "other-name", "DNS:legacy.example", "test-ca");
    certificate(&dir, "rogue", "DNS:localhost", "rogue-ca");
    // SAFETY: this binary's only test sets them before it starts a thread; nothing else in the
    // process reads the environment at the same time.
    unsafe {
        std::env::set_var("SSL_CERT_FILE", dir.join("test-ca.pem"));
        std::env::remove_var("SSL_CERT_DIR");
    }
    let (_, photo) = testkit::corpus("photos/dune.jpg");

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let source = HttpSource::new(&format!("https-list://{}", dir.join("urls.txt").display()), LOCAL).unwrap();

        // The certificate for localhost from the trusted authority: read, a range and the whole.
        let (port, served) = serve(&dir, "good", photo.clone()).await;
        let path = format!("localhost:{port}/users/1/dune.jpg");
        assert_eq!(source.read(&path, 100, 5000).await.unwrap(), photo[100..5100].to_vec());
        let digests = source.digest(&path).await.unwrap();
        assert_eq!(digests.size, photo.len() as u64);
        assert_eq!(served.load(Ordering::SeqCst), 2);

        // A certificate for another name, and one from an authority the system does not trust:
        // refused at the handshake, as unreadable (not retried), no request sent.
        let (port, served) = serve(&dir, "other-name", photo.clone()).await;
        let why = refusal(source.read(&format!("localhost:{port}/users/1/dune.jpg"), 0, 10).await);
        assert!(why.contains("certificate is refused") && why.contains("not valid for name"), "{why}");
        assert_eq!(served.load(Ordering::SeqCst), 0);

        let (port, served) = serve(&dir, "rogue", photo.clone()).await;
        let why = refusal(source.read(&format!("localhost:{port}/users/1/dune.jpg"), 0, 10).await);
        assert!(why.contains("certificate is refused") && why.contains("UnknownIssuer"), "{why}");
        assert_eq!(served.load(Ordering::SeqCst), 0);

        // An SDK client (GetObject) over the same settings: the trusted server answers; the
        // one whose certificate names another host is refused at the handshake.
        let s3 = |port: u16| {
            let config = aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("eu-central-1"))
                .credentials_provider(aws_sdk_s3::config::Credentials::new("key", "secret", None, None, "test"))
                .endpoint_url(format!("https://localhost:{port}"))
                .force_path_style(true)
                .http_client(matbakh_aws::http::sdk_http_client())
                .build();
            aws_sdk_s3::Client::from_conf(config)
        };
        let (port, served) = serve(&dir, "good", photo.clone()).await;
        let got = s3(port).get_object().bucket("b").key("dune.jpg").send().await.expect("read over TLS");
        assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), photo);
        assert_eq!(served.load(Ordering::SeqCst), 1);
        let (port, served) = serve(&dir, "other-name", photo.clone()).await;
        let refused = s3(port).get_object().bucket("b").key("dune.jpg").send().await.expect_err("refused");
        let why = format!("{}", aws_sdk_s3::error::DisplayErrorContext(&refused));
        assert!(why.contains("not valid for name"), "{why}");
        assert_eq!(served.load(Ordering::SeqCst), 0);
    });
    let _ = std::fs::remove_dir_all(&dir);
}
