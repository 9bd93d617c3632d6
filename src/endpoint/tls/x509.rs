//! Just enough DER to describe a certificate in a message and to apply the exact-match rule
//! (src/endpoint/tls/verify.rs): issuer and subject names, validity dates, subjectAltNames and
//! extended key usage. It only reads; signatures and chains are webpki's business. Every string
//! it returns is cleaned for a one-line message (no control characters, bounded length).

use std::net::IpAddr;

/// What wsbridge reads from a certificate.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct CertInfo {
    /// Issuer and subject as `CN=…, O=…` (the common attributes only, in certificate order).
    pub(crate) issuer: String,
    pub(crate) subject: String,
    /// Issuer and subject are the same name: a self-signed certificate, as far as names go.
    pub(crate) self_issued: bool,
    /// Validity, in seconds since 1970-01-01 UTC.
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    /// The hosts it covers: subjectAltName DNS names and IP addresses.
    pub(crate) dns_names: Vec<String>,
    pub(crate) ip_addrs: Vec<IpAddr>,
    /// Extended key usage purposes (OID content bytes), when the extension is present.
    pub(crate) eku: Option<Vec<Vec<u8>>>,
}

/// id-kp-serverAuth and id-kp-clientAuth (OID content bytes).
pub(crate) const SERVER_AUTH: &[u8] = &[0x2b, 6, 1, 5, 5, 7, 3, 1];
pub(crate) const CLIENT_AUTH: &[u8] = &[0x2b, 6, 1, 5, 5, 7, 3, 2];

const BOOLEAN: u8 = 0x01;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];

/// Read a DER X.509 certificate; None if it is not one (or uses forms RFC 5280 forbids).
pub(crate) fn parse(der: &[u8]) -> Option<CertInfo> {
    let mut tbs = Der(der).inner(SEQUENCE)?.inner(SEQUENCE)?;
    tbs.optional(0xa0); // version
    tbs.expect(INTEGER)?; // serial number
    tbs.expect(SEQUENCE)?; // signature algorithm
    let issuer = tbs.expect(SEQUENCE)?;
    let mut validity = tbs.inner(SEQUENCE)?;
    let not_before = time(validity.any()?)?;
    let not_after = time(validity.any()?)?;
    let subject = tbs.expect(SEQUENCE)?;
    tbs.expect(SEQUENCE)?; // subject public key info
    tbs.optional(0x81); // issuerUniqueID
    tbs.optional(0x82); // subjectUniqueID
    let mut info = CertInfo {
        issuer: name(issuer),
        subject: name(subject),
        self_issued: issuer == subject,
        not_before,
        not_after,
        ..CertInfo::default()
    };
    if let Some(exts) = tbs.optional(0xa3) {
        extensions(Der(exts).inner(SEQUENCE)?, &mut info)?;
    }
    Some(info)
}

fn extensions(mut exts: Der<'_>, info: &mut CertInfo) -> Option<()> {
    while !exts.0.is_empty() {
        let mut ext = exts.inner(SEQUENCE)?;
        let oid = ext.expect(OID)?;
        ext.optional(BOOLEAN); // critical
        let mut value = Der(ext.expect(OCTET_STRING)?);
        if oid == SUBJECT_ALT_NAME {
            let mut names = value.inner(SEQUENCE)?;
            while let Some((tag, v)) = names.any() {
                match (tag, v.len()) {
                    (0x82, _) => info.dns_names.push(clean(&String::from_utf8_lossy(v))),
                    (0x87, 4) => info.ip_addrs.push(<[u8; 4]>::try_from(v).ok()?.into()),
                    (0x87, 16) => info.ip_addrs.push(<[u8; 16]>::try_from(v).ok()?.into()),
                    _ => {}
                }
            }
        } else if oid == EXT_KEY_USAGE {
            let mut purposes = value.inner(SEQUENCE)?;
            let mut eku = Vec::new();
            while !purposes.0.is_empty() {
                eku.push(purposes.expect(OID)?.to_vec());
            }
            info.eku = Some(eku);
        }
    }
    Some(())
}

/// `CN=…, O=…` from the content of a Name: the attributes people recognise, in order.
fn name(content: &[u8]) -> String {
    const LABELS: [(&[u8], &str); 6] = [
        (&[0x55, 4, 3], "CN"),
        (&[0x55, 4, 11], "OU"),
        (&[0x55, 4, 10], "O"),
        (&[0x55, 4, 7], "L"),
        (&[0x55, 4, 8], "ST"),
        (&[0x55, 4, 6], "C"),
    ];
    let mut parts = Vec::new();
    let mut rdns = Der(content);
    while let Some(mut set) = rdns.inner(SET) {
        while let Some(mut pair) = set.inner(SEQUENCE) {
            let (Some(oid), Some((tag, value))) = (pair.expect(OID), pair.any()) else {
                break;
            };
            if let Some((_, label)) = LABELS.iter().find(|(o, _)| *o == oid) {
                parts.push(format!("{label}={}", clean(&text(tag, value))));
            }
        }
    }
    parts.join(", ")
}

/// A directory string: BMPString (UTF-16) or one of the byte-per-character or UTF-8 types.
fn text(tag: u8, value: &[u8]) -> String {
    match tag {
        0x1e => {
            let units = value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        _ => String::from_utf8_lossy(value).into_owned(),
    }
}

/// Certificate text goes into one-line messages: at most 80 characters are kept, and control
/// characters are shown escaped ([`crate::text::escape_controls`]).
fn clean(s: &str) -> String {
    let kept: String = s.chars().take(80).collect();
    let mut out = crate::text::escape_controls(&kept).into_owned();
    if s.chars().nth(80).is_some() {
        out.push('…');
    }
    out
}

/// UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ` (the forms RFC 5280 allows),
/// as seconds since 1970.
fn time((tag, s): (u8, &[u8])) -> Option<i64> {
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = s.get(from..from + len)?;
        digits.iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let (year, at) = match (tag, s.len()) {
        (0x17, 13) => (
            num(0, 2).map(|y| if y < 50 { 2000 + y } else { 1900 + y })?,
            2,
        ),
        (0x18, 15) => (num(0, 4)?, 4),
        _ => return None,
    };
    if s.last() != Some(&b'Z') {
        return None;
    }
    let field = |i: usize| num(at + 2 * i, 2);
    let (month, day) = (field(0)?, field(1)?);
    let (h, m, sec) = (field(2)?, field(3)?, field(4)?);
    let valid = (1..=12).contains(&month) && (1..=31).contains(&day);
    if !valid || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// `2021-01-31 23:59:59 UTC`, for messages.
pub(crate) fn format_utc(secs: i64) -> String {
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}:{s:02} UTC")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A cursor over DER elements (single-byte tags, definite lengths up to 4 bytes).
#[derive(Clone, Copy)]
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The next element's tag and content.
    fn any(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (len, rest) = rest.split_at(n);
            (
                len.iter().fold(0, |acc, &b| acc << 8 | usize::from(b)),
                rest,
            )
        };
        if rest.len() < len {
            return None;
        }
        let (content, rest) = rest.split_at(len);
        self.0 = rest;
        Some((tag, content))
    }

    /// The next element's content, if it has this tag.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (t, content) = self.any()?;
        (t == tag).then_some(content)
    }

    fn inner(&mut self, tag: u8) -> Option<Der<'a>> {
        self.expect(tag).map(Der)
    }

    /// The next element's content if it has this tag; otherwise nothing is consumed.
    fn optional(&mut self, tag: u8) -> Option<&'a [u8]> {
        if self.0.first() == Some(&tag) {
            self.expect(tag)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_match_known_values() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59 UTC");
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn times_in_both_forms() {
        assert_eq!(time((0x17, b"700101000000Z")), Some(0));
        assert_eq!(time((0x17, b"491231235959Z")), Some(2_524_607_999));
        assert_eq!(time((0x18, b"99991231235959Z")), Some(253_402_300_799));
        assert_eq!(time((0x17, b"7001010000Z")), None);
        assert_eq!(time((0x17, b"700101000000+")), None);
        assert_eq!(time((0x17, b"701301000000Z")), None);
        assert_eq!(time((0x04, b"700101000000Z")), None);
    }

    #[test]
    fn reads_an_rcgen_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Org");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "line\nbreak");
        params.not_before = rcgen::date_time_ymd(2020, 2, 29);
        params.not_after = rcgen::date_time_ymd(2060, 1, 2);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.self_signed(&key).unwrap();
        let info = parse(cert.der()).expect("parses");
        assert_eq!(info.subject, "O=Org, CN=line\\x0abreak");
        assert_eq!(info.issuer, info.subject);
        assert!(info.self_issued);
        assert_eq!(format_utc(info.not_before), "2020-02-29 00:00:00 UTC");
        assert_eq!(format_utc(info.not_after), "2060-01-02 00:00:00 UTC");
        assert_eq!(info.dns_names, ["a.example"]);
        assert_eq!(info.ip_addrs, [IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(info.eku, Some(vec![CLIENT_AUTH.to_vec()]));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(parse(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
    }

    #[test]
    fn long_names_are_cut() {
        let long = "x".repeat(200);
        assert_eq!(clean(&long).chars().count(), 81);
        assert_eq!(clean("a\u{1b}[31mb\u{9b}"), "a\\x1b[31mb\\u{9b}");
    }
}
