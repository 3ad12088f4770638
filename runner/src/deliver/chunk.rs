//! Splitting an entry's recipients into SMTP transactions the way Mailman does: grouped
//! by top-level domain (so a relay's per-message recipient limit is rarely hit), at
//! most `limit` per transaction.
use mailqueue_message::Version;

/// Mailman's default recipients per transaction: 2.1 `SMTP_MAX_RCPTS` (500), Mailman 3
/// `[mta] max_recipients` (10).
pub fn default_limit(version: Version) -> usize {
    match version {
        Version::Mailman2 => 500,
        Version::Mailman3 => 10,
    }
}

/// Both versions' `chunkmap`: com, then net/org, then edu/us/ca, everything else 0.
fn bucket_of(tld: &str) -> usize {
    match tld {
        "com" => 1,
        "net" | "org" => 2,
        "edu" | "us" | "ca" => 3,
        _ => 0,
    }
}

/// The transactions for `recipients`. A `limit` of 0 means one transaction for all.
/// Mailman 2.1 takes the TLD after the address's last dot and walks the buckets in
/// number order; Mailman 3 takes the domain's last label, walks the biggest bucket
/// first and sorts each transaction's recipients.
pub fn chunk(recipients: &[String], limit: usize, version: Version) -> Vec<Vec<String>> {
    if recipients.is_empty() {
        return Vec::new();
    }
    if limit == 0 {
        let mut all = recipients.to_vec();
        if version == Version::Mailman3 {
            all.sort();
        }
        return vec![all];
    }
    let mut buckets: [Vec<String>; 4] = Default::default();
    for r in recipients {
        let tld = match version {
            Version::Mailman2 => r.rsplit_once('.').map_or("", |(_, t)| t),
            Version::Mailman3 => {
                let domain = r.split_once('@').map_or("", |(_, d)| d);
                domain.rsplit('.').next().unwrap_or("")
            }
        };
        if let Some(b) = buckets.get_mut(bucket_of(tld)) {
            b.push(r.clone());
        }
    }
    let mut order: Vec<usize> = (0..buckets.len()).collect();
    if version == Version::Mailman3 {
        order.sort_by_key(|&i| std::cmp::Reverse(buckets.get(i).map_or(0, Vec::len)));
    }
    let mut chunks = Vec::new();
    for i in order {
        let Some(bucket) = buckets.get_mut(i) else {
            continue;
        };
        if version == Version::Mailman3 {
            bucket.sort();
        }
        for part in bucket.chunks(limit) {
            chunks.push(part.to_vec());
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn groups_by_tld_then_limits() {
        let r = s(&["a@x.com", "b@y.org", "c@z.net", "d@w.de", "e@v.com", "f@u.edu"]);
        let c = chunk(&r, 500, Version::Mailman2);
        assert_eq!(c, vec![s(&["d@w.de"]), s(&["a@x.com", "e@v.com"]), s(&["b@y.org", "c@z.net"]), s(&["f@u.edu"])]);
        let c = chunk(&r, 1, Version::Mailman3);
        assert_eq!(c.len(), 6);
        assert!(c.iter().all(|t| t.len() == 1));
    }

    #[test]
    fn zero_limit_is_one_transaction() {
        let r = s(&["b@y.org", "a@x.com"]);
        assert_eq!(chunk(&r, 0, Version::Mailman3), vec![s(&["a@x.com", "b@y.org"])]);
    }
}
