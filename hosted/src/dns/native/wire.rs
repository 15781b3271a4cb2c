//! DNS messages, through the `simple-dns` crate: building a query, checking and reading a
//! reply.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, RCODE, ResourceRecord, TYPE};

use crate::dns::{Record, RecordType};

fn wire_type(rtype: RecordType) -> TYPE {
    match rtype {
        RecordType::A => TYPE::A,
        RecordType::AAAA => TYPE::AAAA,
        RecordType::MX => TYPE::MX,
        RecordType::TXT => TYPE::TXT,
        RecordType::SRV => TYPE::SRV,
        RecordType::CNAME => TYPE::CNAME,
        RecordType::PTR => TYPE::PTR,
    }
}

/// A recursive query for `name`'s `rtype` records, with message id `id`.
pub(super) fn query(id: u16, name: &str, rtype: RecordType) -> io::Result<Vec<u8>> {
    let qname = Name::new(name).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a valid DNS name: {e}"),
        )
    })?;
    let mut packet = Packet::new_query(id);
    packet.set_flags(PacketFlag::RECURSION_DESIRED);
    packet.questions.push(simple_dns::Question::new(
        qname,
        QTYPE::TYPE(wire_type(rtype)),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    packet
        .build_bytes_vec()
        .map_err(|e| io::Error::other(format!("could not build the query for {name}: {e}")))
}

/// What a name server said, once the reply is known to answer our query.
#[derive(Debug)]
pub(super) enum Reply {
    /// Too large for UDP: ask again over TCP.
    Truncated,
    /// An answer (possibly empty: the name exists without such records).
    Records(Vec<Record>),
    /// The name does not exist (NXDOMAIN).
    NoSuchName,
    /// Another response code: the server could not answer (SERVFAIL, REFUSED, ...).
    Failed(RCODE),
}

/// Reads `bytes` as the reply to `query(id, name, rtype)`; `None` if it is not one (garbage,
/// another id, another question), which the caller ignores as a spoofing attempt or a
/// straggler from an earlier try.
pub(super) fn reply(bytes: &[u8], id: u16, name: &str, rtype: RecordType) -> Option<Reply> {
    let packet = Packet::parse(bytes).ok()?;
    if packet.id() != id || !packet.has_flags(PacketFlag::RESPONSE) {
        return None;
    }
    let [question] = packet.questions.as_slice() else { return None };
    let asked = QTYPE::TYPE(wire_type(rtype));
    if question.qtype != asked
        || question.qclass != QCLASS::CLASS(CLASS::IN)
        || !same_name(&question.qname.to_string(), name)
    {
        return None;
    }
    if packet.has_flags(PacketFlag::TRUNCATION) {
        return Some(Reply::Truncated);
    }
    Some(match packet.rcode() {
        RCODE::NoError => {
            Reply::Records(packet.answers.iter().filter_map(|rr| record(rr, rtype)).collect())
        }
        RCODE::NameError => Reply::NoSuchName,
        other => Reply::Failed(other),
    })
}

/// DNS names compare without regard to ASCII case or a trailing dot.
fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// `rr` as a [`Record`], if it is of the type asked for (answers also carry the CNAME chain
/// that led to the records).
fn record(rr: &ResourceRecord<'_>, rtype: RecordType) -> Option<Record> {
    let record = match &rr.rdata {
        RData::A(a) => Record::A(Ipv4Addr::from(a.address)),
        RData::AAAA(aaaa) => Record::Aaaa(Ipv6Addr::from(aaaa.address)),
        RData::MX(mx) => {
            Record::Mx { preference: mx.preference, exchange: mx.exchange.to_string() }
        }
        RData::TXT(txt) => Record::Txt(txt_strings(rr, txt)?),
        RData::SRV(srv) => Record::Srv {
            priority: srv.priority,
            weight: srv.weight,
            port: srv.port,
            target: srv.target.to_string(),
        },
        RData::CNAME(cname) => Record::Cname(cname.0.to_string()),
        RData::PTR(ptr) => Record::Ptr(ptr.0.to_string()),
        _ => return None,
    };
    let wanted = matches!(
        (&record, rtype),
        (Record::A(_), RecordType::A)
            | (Record::Aaaa(_), RecordType::AAAA)
            | (Record::Mx { .. }, RecordType::MX)
            | (Record::Txt(_), RecordType::TXT)
            | (Record::Srv { .. }, RecordType::SRV)
            | (Record::Cname(_), RecordType::CNAME)
            | (Record::Ptr(_), RecordType::PTR)
    );
    wanted.then_some(record)
}

/// The character strings of a TXT record, each as sent.
///
/// simple-dns hands them out only split at the first `=` (as RFC 6763 attributes), which
/// loses strings that are empty or start with `=`; so the record is encoded again on its own
/// and its RDATA, a plain sequence of length-prefixed strings, split here.
fn txt_strings(rr: &ResourceRecord<'_>, txt: &simple_dns::rdata::TXT<'_>) -> Option<Vec<Vec<u8>>> {
    let mut alone = Packet::new_reply(0);
    alone.answers.push(ResourceRecord::new(
        Name::new_unchecked(""),
        rr.class,
        0,
        RData::TXT(txt.clone()),
    ));
    let bytes = alone.build_bytes_vec().ok()?;
    // Header (12) + root name (1) + type, class (4) + TTL (4) + RDLENGTH (2).
    let mut rdata = bytes.get(23..)?;
    let mut strings = Vec::new();
    while let Some((&len, rest)) = rdata.split_first() {
        let (string, rest) = rest.split_at_checked(usize::from(len))?;
        strings.push(string.to_vec());
        rdata = rest;
    }
    Some(strings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::CharacterString;

    fn answer(id: u16, name: &str, rtype: RecordType, rdata: RData<'static>) -> Vec<u8> {
        let query = query(id, name, rtype).unwrap();
        let mut packet = Packet::parse(&query).unwrap().into_reply();
        packet.answers.push(ResourceRecord::new(Name::new_unchecked("x"), CLASS::IN, 60, rdata));
        packet.build_bytes_vec().unwrap()
    }

    #[test]
    fn txt_strings_survive_as_sent() {
        let txt = simple_dns::rdata::TXT::new()
            .with_char_string(CharacterString::new(b"=starts").unwrap())
            .with_char_string(CharacterString::new(b"").unwrap())
            .with_char_string(CharacterString::new(b"k=v\xff").unwrap());
        let bytes = answer(7, "t.example", RecordType::TXT, RData::TXT(txt));
        let Some(Reply::Records(records)) = reply(&bytes, 7, "T.example.", RecordType::TXT) else {
            panic!("not read as the reply");
        };
        assert_eq!(records, [Record::Txt(vec![b"=starts".to_vec(), vec![], b"k=v\xff".to_vec()])]);
    }

    #[test]
    fn replies_to_other_queries_are_ignored() {
        let a = RData::A(simple_dns::rdata::A { address: 0x7f00_0001 });
        let bytes = answer(7, "a.example", RecordType::A, a);
        assert!(reply(&bytes, 8, "a.example", RecordType::A).is_none());
        assert!(reply(&bytes, 7, "b.example", RecordType::A).is_none());
        assert!(reply(&bytes, 7, "a.example", RecordType::AAAA).is_none());
        assert!(reply(&bytes[..5], 7, "a.example", RecordType::A).is_none());
        let query = query(7, "a.example", RecordType::A).unwrap();
        assert!(reply(&query, 7, "a.example", RecordType::A).is_none(), "a query is no reply");
        assert!(matches!(
            reply(&bytes, 7, "a.example", RecordType::A),
            Some(Reply::Records(r)) if r == [Record::A(Ipv4Addr::LOCALHOST)]
        ));
    }
}
