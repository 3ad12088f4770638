//! Mailman 2.1 on Python 2.7 (email 4.0.3). Placeholder until helper-py2 commits.
//! lib.rs and model.rs call `py2::parser::parse(&[u8]) -> Message` and
//! `py2::delivery_bytes(&Message, envsender: &str) -> Result<Vec<u8>, Error>`
//! (Result: a Header in a charset we cannot encode is an error, not a panic).

pub mod parser {
    use crate::model::Message;

    pub fn parse(_text: &[u8]) -> Message {
        Message::new("Mailman.Message.Message", "text/plain")
    }
}

pub fn delivery_bytes(_msg: &crate::Message, _envsender: &str) -> Result<Vec<u8>, crate::Error> {
    Err(crate::Error::Unrepresentable {
        part: crate::PartPath::default(),
        problem: "Mailman 2.1 delivery is not implemented yet".into(),
    })
}
