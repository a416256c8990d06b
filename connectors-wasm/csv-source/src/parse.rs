//! An RFC 4180 record reader over a byte buffer that may end in the middle of a record.
//!
//! Fields are separated by a one-byte delimiter; a field starting with `"` is quoted and may
//! contain the delimiter, `""` (an escaped quote), CR and LF; records end with LF or CRLF (a CR
//! not followed by LF is an ordinary character). Leniencies, as most readers have them: a quote
//! inside an unquoted field is literal, and text after a closing quote is appended to the field.
//!
//! [`next_record`] only reports a record as complete when its terminator is in the buffer (or the
//! buffer ends the file), so a batch never consumes a partial row.

/// What [`next_record`] found at `start`.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A complete record; `end` is the offset just past its terminator.
    Record { fields: Vec<Vec<u8>>, end: usize },
    /// A record that cannot be read, spanning to `end` (only at the end of the file: an
    /// unterminated quoted field).
    Broken { message: String, end: usize },
    /// The buffer ends inside a record; more bytes are needed.
    Incomplete,
    /// `start` is the end of the buffer.
    End,
}

/// Reads the record starting at `buf[start..]`. `at_eof`: the buffer ends where the file does,
/// so a final record without terminator is complete.
pub fn next_record(buf: &[u8], start: usize, delimiter: u8, at_eof: bool) -> Next {
    let len = buf.len();
    if start >= len {
        return Next::End;
    }
    let mut fields = Vec::new();
    let mut field = Vec::new();
    let mut i = start;
    loop {
        // Start of a field.
        if i < len && buf[i] == b'"' {
            i += 1;
            loop {
                let Some(q) = find(buf, i, |b| b == b'"') else {
                    return if at_eof {
                        Next::Broken { message: "unterminated quoted field".to_owned(), end: len }
                    } else {
                        Next::Incomplete
                    };
                };
                field.extend_from_slice(&buf[i..q]);
                if q + 1 < len && buf[q + 1] == b'"' {
                    field.push(b'"');
                    i = q + 2;
                    continue;
                }
                if q + 1 == len && !at_eof {
                    // Cannot tell a closing quote from the first half of `""` yet.
                    return Next::Incomplete;
                }
                i = q + 1;
                break;
            }
        }
        // The unquoted part (all of an unquoted field; after a closing quote, normally nothing).
        loop {
            let Some(j) = find(buf, i, |b| b == delimiter || b == b'\n' || b == b'\r') else {
                if !at_eof {
                    return Next::Incomplete;
                }
                field.extend_from_slice(&buf[i..]);
                fields.push(field);
                return Next::Record { fields, end: len };
            };
            field.extend_from_slice(&buf[i..j]);
            match buf[j] {
                b'\n' => {
                    fields.push(field);
                    return Next::Record { fields, end: j + 1 };
                }
                b'\r' => {
                    if j + 1 < len {
                        if buf[j + 1] == b'\n' {
                            fields.push(field);
                            return Next::Record { fields, end: j + 2 };
                        }
                        // A lone CR is data.
                        field.push(b'\r');
                        i = j + 1;
                        continue;
                    }
                    if !at_eof {
                        return Next::Incomplete;
                    }
                    field.push(b'\r');
                    fields.push(field);
                    return Next::Record { fields, end: len };
                }
                _ => {
                    // The delimiter: the next field starts after it.
                    fields.push(std::mem::take(&mut field));
                    i = j + 1;
                    break;
                }
            }
        }
    }
}

/// Whether a record is an empty line (one empty field), which readers skip.
pub fn is_blank(fields: &[Vec<u8>]) -> bool {
    matches!(fields, [only] if only.is_empty())
}

fn find(buf: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> Option<usize> {
    buf.get(from..)?.iter().position(|&b| pred(b)).map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(buf: &[u8], at_eof: bool) -> (Vec<Vec<String>>, usize) {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            match next_record(buf, at, b',', at_eof) {
                Next::Record { fields, end } => {
                    out.push(fields.into_iter().map(|f| String::from_utf8(f).expect("utf8")).collect());
                    at = end;
                }
                Next::Broken { message, .. } => panic!("broken: {message}"),
                Next::Incomplete | Next::End => return (out, at),
            }
        }
    }

    #[test]
    fn quoting_rules() {
        let csv = b"id,name\r\n1,\"Smith, \"\"Jo\"\"\"\r\n2,\"two\nlines\"\n3,plain \"quote\"\r\n4,\r\n";
        let (rows, end) = all(csv, true);
        assert_eq!(end, csv.len());
        assert_eq!(rows[0], ["id", "name"]);
        assert_eq!(rows[1], ["1", "Smith, \"Jo\""]);
        assert_eq!(rows[2], ["2", "two\nlines"]);
        assert_eq!(rows[3], ["3", "plain \"quote\""]);
        assert_eq!(rows[4], ["4", ""]);
    }

    #[test]
    fn partial_buffers_stop_before_the_incomplete_record() {
        let csv = b"a,b\n1,\"x\ny\"\n2,z";
        for cut in 0..csv.len() {
            let (rows, end) = all(&csv[..cut], false);
            // Every record reported is complete, and ends where a record ends.
            assert!([0, 4, 12].contains(&end), "cut {cut}: end {end}");
            assert_eq!(rows.len(), [0, 4, 12].iter().position(|&e| e == end).unwrap_or(0));
        }
        let (rows, end) = all(csv, true);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2], ["2", "z"]);
        assert_eq!(end, csv.len());
    }

    #[test]
    fn quote_at_buffer_end_waits_for_more() {
        assert_eq!(next_record(b"\"a\"", 0, b',', false), Next::Incomplete);
        assert_eq!(next_record(b"\"a\"\"", 0, b',', false), Next::Incomplete);
        assert_eq!(next_record(b"a\r", 0, b',', false), Next::Incomplete);
        assert_eq!(next_record(b"\"a\"", 0, b',', true), Next::Record { fields: vec![b"a".to_vec()], end: 3 });
        assert!(matches!(next_record(b"\"open", 0, b',', true), Next::Broken { .. }));
    }

    #[test]
    fn other_delimiters_lone_cr_and_blank_lines() {
        let Next::Record { fields, end } = next_record(b"a;b\rc;d\n\n", 0, b';', false) else { panic!() };
        assert_eq!(fields, vec![b"a".to_vec(), b"b\rc".to_vec(), b"d".to_vec()]);
        assert_eq!(end, 8);
        let Next::Record { fields, .. } = next_record(b"a;b\rc;d\n\n", end, b';', false) else { panic!() };
        assert!(is_blank(&fields));
        assert_eq!(next_record(b"x\n", 2, b',', true), Next::End);
    }
}
