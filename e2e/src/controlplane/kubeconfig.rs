//! Kubeconfig files for the control plane's clients: a client certificate (the admin, the
//! controller manager, the scheduler) or a bearer token (netheal's binaries, authenticated as
//! their ServiceAccounts). Pure: text from values.

use super::pki::ClientCert;
use serde_json::json;

/// How a kubeconfig's user authenticates.
#[derive(Debug, Clone)]
pub enum Credentials<'a> {
    /// A client certificate.
    Cert(&'a ClientCert),
    /// A bearer token (a TokenRequest's).
    Token(&'a str),
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A kubeconfig (JSON, which is YAML) for `server` trusting `ca_pem`, as `user`.
pub fn render(server: &str, ca_pem: &str, user: &str, credentials: &Credentials<'_>) -> String {
    let user_entry = match credentials {
        Credentials::Cert(c) => json!({
            "client-certificate-data": b64(&c.cert_pem),
            "client-key-data": b64(&c.key_pem),
        }),
        Credentials::Token(t) => json!({ "token": t }),
    };
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "netheal-e2e", "cluster": {
            "server": server,
            "certificate-authority-data": b64(ca_pem),
        }}],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": "netheal-e2e", "context": {"cluster": "netheal-e2e", "user": user}}],
        "current-context": "netheal-e2e",
    });
    serde_json::to_string_pretty(&config).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(b64(""), "");
        assert_eq!(b64("f"), "Zg==");
        assert_eq!(b64("fo"), "Zm8=");
        assert_eq!(b64("foo"), "Zm9v");
        assert_eq!(b64("foobar"), "Zm9vYmFy");
    }

    #[test]
    fn a_token_kubeconfig_names_server_ca_and_token() {
        let text = render(
            "https://127.0.0.1:6443",
            "CA",
            "agent",
            &Credentials::Token("t0k"),
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            v["clusters"][0]["cluster"]["certificate-authority-data"],
            "Q0E="
        );
        assert_eq!(v["users"][0]["user"]["token"], "t0k");
        assert_eq!(v["current-context"], "netheal-e2e");
    }
}
