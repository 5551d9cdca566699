//! The request headers the gateway reads before it decides (`Host`, `Authorization`,
//! `Content-Length`), found in one pass over the request's headers. A request carries a
//! handful, and a hash lookup per name (hash, probe, compare) costs more than reading each
//! entry's name, which for these standard names is one integer compare.

use http::{HeaderMap, header};

/// A header's first two values: enough to tell none, one and several apart, which is all
/// the checks that read them ask (a second `Host` or `Authorization` is refused).
#[derive(Debug, Default, Clone, Copy)]
pub struct FirstTwo<'a>([Option<&'a [u8]>; 2]);

impl<'a> FirstTwo<'a> {
    fn push(&mut self, value: &'a [u8]) {
        match &mut self.0 {
            [first @ None, _] => *first = Some(value),
            [Some(_), second @ None] => *second = Some(value),
            [Some(_), Some(_)] => {}
        }
    }

    /// The values kept, in the request's order.
    pub fn values(self) -> impl Iterator<Item = &'a [u8]> {
        self.0.into_iter().flatten()
    }

    /// The first value.
    pub fn first(self) -> Option<&'a [u8]> {
        self.0[0]
    }
}

/// What the request carries of the headers read before the decision.
#[derive(Debug, Default, Clone, Copy)]
pub struct Read<'a> {
    /// `Host`.
    pub host: FirstTwo<'a>,
    /// `Authorization`.
    pub authorization: FirstTwo<'a>,
    /// `Content-Length`.
    pub content_length: FirstTwo<'a>,
}

/// Reads `headers` once.
pub fn read(headers: &HeaderMap) -> Read<'_> {
    let mut read = Read::default();
    for (name, value) in headers {
        let slot = if *name == header::HOST {
            &mut read.host
        } else if *name == header::AUTHORIZATION {
            &mut read.authorization
        } else if *name == header::CONTENT_LENGTH {
            &mut read.content_length
        } else {
            continue;
        };
        slot.push(value.as_bytes());
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_header_keeps_its_first_two_values_in_order() {
        let mut headers = HeaderMap::new();
        headers.append("accept", "*/*".parse().unwrap());
        headers.append("host", "a.example".parse().unwrap());
        headers.append("authorization", "Bearer one".parse().unwrap());
        headers.append("Host", "b.example".parse().unwrap());
        headers.append("host", "c.example".parse().unwrap());
        let read = read(&headers);
        let host: Vec<_> = read.host.values().collect();
        assert_eq!(host, [&b"a.example"[..], b"b.example"]);
        assert_eq!(read.authorization.values().count(), 1);
        assert_eq!(read.authorization.first(), Some(&b"Bearer one"[..]));
        assert_eq!(read.content_length.first(), None);
        assert_eq!(read.content_length.values().count(), 0);
    }
}
