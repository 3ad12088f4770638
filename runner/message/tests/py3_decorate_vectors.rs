//! Every Mailman 3 entry of the list-delivery vectors, decorated (and personalized) from
//! the list settings the manifest records, flattens to exactly the DATA Mailman 3's
//! OutgoingRunner sent to each recipient (generated boundaries masked as the vectors'
//! README says).

use base64::Engine;
use mailqueue_message::py3::decorate::{self, Decoration, ListVars, MemberVars};
use mailqueue_message::py3::personalize;
use mailqueue_message::{message_from_value, py3, Version};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors-lists")
}

fn rest(name: &str) -> Json {
    let v: Json =
        serde_json::from_slice(&std::fs::read(dir().join("rest").join(name)).expect("rest sample")).expect("json");
    v["body"].clone()
}

/// Python's generated boundaries (`===============` + 19 digits + `==`, maybe `.N`)
/// replaced by one placeholder.
fn mask(data: &[u8]) -> Vec<u8> {
    let pat = b"===============";
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(pat) {
            let digits = data[i + pat.len()..].iter().take_while(|c| c.is_ascii_digit()).count();
            let end = i + pat.len() + digits;
            if digits == 19 && data[end..].starts_with(b"==") {
                let mut j = end + 2;
                if data.get(j) == Some(&b'.') {
                    j += 1 + data[j + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                }
                out.extend_from_slice(b"<BOUNDARY>");
                i = j;
                continue;
            }
        }
        out.push(data[i]);
        i += 1;
    }
    out
}

fn s(v: &Json) -> String {
    v.as_str().unwrap_or("").to_owned()
}

fn list_vars(list: &Json) -> ListVars {
    let patterns = rest("system-configuration-urlpatterns.json");
    let urlpatterns = ["mailinglist", "held_message", "pending_subscriptions", "pending_unsubscriptions", "domain"]
        .iter()
        .map(|k| (k.to_string(), s(&patterns[k])))
        .collect();
    ListVars {
        fqdn_listname: s(&list["fqdn_listname"]),
        list_name: s(&list["fqdn_listname"]).split('@').next().unwrap_or("").to_owned(),
        mail_host: s(&list["fqdn_listname"]).split('@').nth(1).unwrap_or("").to_owned(),
        list_id: s(&list["list_id"]),
        display_name: s(&list["display_name"]),
        description: s(&list["description"]),
        info: s(&list["info"]),
        request_address: s(&list["request_address"]),
        owner_address: s(&list["owner_address"]),
        language: s(&list["preferred_language"]),
        site_owner: s(&list["site_owner"]),
        base_url: list["domain_base_url"].as_str().map(str::to_owned),
        urlpatterns,
    }
}

#[test]
fn mailman3_list_vectors_decorate_byte_for_byte() {
    let manifest: Json =
        serde_json::from_slice(&std::fs::read(dir().join("manifest.json")).expect("manifest")).expect("json");
    let mut checked = 0;
    let mut failures = Vec::new();
    for v in manifest["vectors"].as_array().expect("vectors").iter().filter(|v| v["version"] == "mailman3") {
        let list = &manifest["mailman3"]["lists"][s(&v["list_id"])];
        let bytes = std::fs::read(dir().join(s(&v["path"]))).expect("vector");
        let entry = mailqueue_pickle::read_entry(&bytes).expect("entry");
        let msg = message_from_value(&entry.message, Version::Mailman3).expect("message");
        let vars = list_vars(list);
        let templates = &list["effective_templates"];
        let lcset = s(&list["language_charset"]);
        let individual = v["delivery"] == "individual";
        let dup: Vec<String> =
            v["expected_metadata"]["add-dup-header"].as_array().map(|a| a.iter().map(s).collect()).unwrap_or_default();
        for tx in v["expected_transactions"].as_array().expect("transactions") {
            let want = base64::engine::general_purpose::STANDARD.decode(s(&tx["data_b64"])).expect("b64");
            let rcpt = s(&tx["rcpt_tos"][0]);
            let mut m = msg.clone();
            let member = list["members"].as_array().expect("members").iter().find(|mm| mm["email"] == rcpt.as_str());
            let member_vars = member.map(|mm| MemberVars {
                address_display_name: mm["address_display_name"].as_str().map(str::to_owned),
                email: s(&mm["email"]),
                original_email: s(&mm["original_email"]),
                display_name: mm["address_display_name"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .or(mm["user_display_name"].as_str())
                    .unwrap_or("")
                    .to_owned(),
                language_description: s(&rest(&format!(
                    "system-configuration-language.{}.json",
                    s(&mm["preferred_language"])
                ))["description"]),
            });
            if individual {
                personalize::avoid_duplicates(&mut m, dup.contains(&rcpt));
            }
            let who = if individual { member_vars.as_ref().map(|mv| (mv, rcpt.as_str())) } else { None };
            let subs = decorate::substitutions(&vars, who, &[]).expect("substitutions");
            let d = Decoration {
                header: decorate::expand_decoration(&s(&templates["list:member:regular:header"]), &subs),
                footer: decorate::expand_decoration(&s(&templates["list:member:regular:footer"]), &subs),
                list_charset: lcset.clone(),
            };
            decorate::decorate(&mut m, &d).expect("decorate");
            if individual && list["personalize"] == "full" {
                let user =
                    member.filter(|mm| mm["has_user"] == true).map(|mm| mm["user_display_name"].as_str().unwrap_or(""));
                personalize::personalize_to(&mut m, user, &rcpt).expect("personalize");
            }
            let got = py3::delivery_bytes(&m).expect("flatten");
            if mask(&got) != mask(&want) {
                failures.push(format!(
                    "{} {} -> {rcpt}:\n--- got\n{}\n--- want\n{}",
                    s(&v["kind"]),
                    s(&v["source"]),
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want)
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no mailman3 transactions in the vectors");
    assert!(failures.is_empty(), "{} of {checked} transactions differ:\n{}", failures.len(), failures.join("\n"));
}
