use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::super::columns::{EventColumns, Limits, Reject, Row, check_row};
use super::super::json;
use super::super::tests::random_event;
use super::parse_plain;

const DIM: usize = 4;

fn limits() -> Limits {
    Limits {
        max_seq_len: 6,
        content_dim: DIM,
        min_time: i64::MIN,
        max_time: i64::MAX,
    }
}

/// A parsed row with what it appended: event id bytes, behaviour lists, content.
type Parsed = (Row, Vec<u8>, Vec<u64>, Vec<u64>, Vec<f32>);

fn tails(row: Row, cols: &EventColumns) -> Parsed {
    (
        row,
        cols.event_id.clone(),
        cols.hist_items.clone(),
        cols.hist_cats.clone(),
        cols.content.clone(),
    )
}

/// The fast path followed by the row check, or `None` when it declines.
fn fast(text: &str) -> Option<Result<Parsed, Reject>> {
    let mut cols = EventColumns::new(DIM);
    let limits = limits();
    let row = parse_plain(&mut cols, text.as_bytes(), &limits)?;
    Some(
        check_row(
            &row,
            &cols.event_id,
            cols.hist_items.len(),
            cols.hist_cats.len(),
            &cols.content,
            &limits,
        )
        .map(|()| tails(row, &cols)),
    )
}

/// The serde path alone.
fn serde(text: &str) -> Result<Parsed, Reject> {
    let mut cols = EventColumns::new(DIM);
    json::parse_serde(&mut cols, text, &limits()).map(|row| tails(row, &cols))
}

/// Valid messages of the plain shape (no escapes; content null or short decimals, as Rust
/// prints f32s) take the fast path.
#[test]
fn plain_messages_take_the_fast_path_with_the_same_result() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut taken = 0;
    for i in 0..2_000 {
        let seq_len = rng.random_range(0..=6);
        let event = random_event(&mut rng, i, seq_len, DIM);
        let plain = event.event_id.is_ascii() && !event.event_id.contains(['"', '\\', '\n']);
        let text = String::from_utf8(event.to_json()).expect("utf-8");
        match fast(&text) {
            Some(result) => {
                taken += 1;
                assert_eq!(result, serde(&text), "{text}");
            }
            None => assert!(!plain, "declined a plain message: {text}"),
        }
    }
    assert!(taken > 1_500, "{taken}");
}

/// Random damage to valid messages (bytes deleted, inserted, replaced, parts repeated, the
/// end cut off): whenever the fast path accepts, the serde path accepts with the same row and
/// the same appended values, or rejects with the same reason and detail.
#[test]
fn damaged_messages_never_decode_differently() {
    let mut rng = StdRng::seed_from_u64(11);
    let alphabet = b" ,:{}[]\"-+.eE0123456789nulx\\\t";
    let (mut accepted, mut declined) = (0, 0);
    for i in 0..30_000 {
        let seq_len = rng.random_range(0..=7);
        let mut event = random_event(&mut rng, i, seq_len, DIM);
        if i % 3 == 0 {
            event.hour = rng.random_range(0..30);
        }
        let mut bytes = event.to_json();
        for _ in 0..rng.random_range(1..=3) {
            let n = bytes.len();
            let at = rng.random_range(0..n);
            match rng.random_range(0..5) {
                0 => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
                2 => bytes[at] = alphabet[rng.random_range(0..alphabet.len())],
                3 => {
                    let end = (at + rng.random_range(1..40)).min(n);
                    let piece = bytes[at..end].to_vec();
                    bytes.splice(at..at, piece);
                }
                _ => bytes.truncate(at),
            }
            if bytes.is_empty() {
                break;
            }
        }
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        match fast(&text) {
            Some(result) => {
                accepted += 1;
                assert_eq!(result, serde(&text), "{text}");
            }
            None => declined += 1,
        }
    }
    // Both branches were exercised: some damage leaves a plain, valid message.
    assert!(
        accepted > 500 && declined > 10_000,
        "{accepted} / {declined}"
    );
}

/// `[text]` as a content list: the bits the fast path reads (`None` when it declines) and the
/// bits serde_json reads.
fn content_bits(text: &str) -> (Option<Vec<u32>>, Vec<u32>) {
    let json = format!("[{text}]");
    let by_serde: Vec<f32> = serde_json::from_str(&json).expect("serde reads it");
    let mut out = Vec::new();
    let mut cursor = super::Cursor {
        text: json.as_bytes(),
        at: 0,
    };
    let fast = cursor.content(&mut out, 4).map(|present| {
        assert!(present);
        out.iter().map(|x| x.to_bits()).collect()
    });
    (fast, by_serde.iter().map(|x| x.to_bits()).collect())
}

/// Content numbers: what the fast path reads equals serde_json's f32, over printed f32s,
/// integers, exponents and many-digit decimals (where the fast path declines).
#[test]
fn content_numbers_read_as_serde_does() {
    let mut rng = StdRng::seed_from_u64(9);
    let mut read = 0;
    for i in 0..50_000 {
        let text = match i % 5 {
            0 => format!("{}", rng.random_range(-10.0f32..10.0)),
            1 => format!(
                "{}",
                rng.random::<f32>() * 10f32.powi(rng.random_range(-30..30))
            ),
            2 => format!("{}", rng.random_range(-100_000i64..100_000)),
            3 => format!(
                "{}e{}",
                rng.random_range(1..99_999),
                rng.random_range(-40..40)
            ),
            _ => format!("{:.*}", rng.random_range(0..25), rng.random::<f64>() * 1e3),
        };
        if let (Some(fast), by_serde) = content_bits(&text) {
            read += 1;
            assert_eq!(fast, by_serde, "{text}");
        }
    }
    assert!(read > 30_000, "{read}");
    // Signed zeros and the edges of the exact range, bit for bit.
    for text in [
        "0",
        "-0",
        "0.0",
        "-0.0",
        "-0e5",
        "0.000",
        "1e22",
        "1e-22",
        "-999999999999999",
        "0.000000000000001",
        "123456789012345e-22",
        "9.99999999999999e22",
    ] {
        if let (Some(fast), by_serde) = content_bits(text) {
            assert_eq!(fast, by_serde, "{text}");
        }
    }
}

#[test]
fn numbers_of_every_length_parse_as_std_does() {
    let mut rng = StdRng::seed_from_u64(5);
    // What follows a number: a list's end at the end of the text (the one-digit-at-a-time path
    // for the last bytes of a payload) or more of the list (at least 24 bytes from the number's
    // start: the word-at-a-time path).
    for tail in [
        "]",
        ",1234567890123456789012345]",
        "}                         ",
    ] {
        for len in 1..=25 {
            for _ in 0..2_000 {
                let mut text: String = (0..len)
                    .map(|k| {
                        let lo = if k == 0 && len > 1 { 1 } else { 0 };
                        char::from(b'0' + rng.random_range(lo..10u8))
                    })
                    .collect();
                let expected = text.parse::<u64>().ok();
                text.push_str(tail);
                let got = super::read_u64(text.as_bytes(), 0).map(|(v, end)| {
                    assert_eq!(end, len, "{text}");
                    v
                });
                assert_eq!(got, expected, "{text}");
            }
        }
    }
    for (text, expected) in [
        ("0]", Some(0)),
        ("01", None),
        ("0.5", None),
        ("7e2", None),
        ("18446744073709551615", Some(u64::MAX)),
        ("18446744073709551616", None),
        ("-1", None),
        ("", None),
        ("]", None),
    ] {
        for padding in ["", "                         "] {
            let text = format!("{text}{padding}");
            assert_eq!(
                super::read_u64(text.as_bytes(), 0).map(|(v, _)| v),
                expected,
                "{text:?}"
            );
        }
    }
    // Fractions and exponents right after 1-, 8-, 9- and 19-digit numbers, in the window too.
    for digits in ["1", "12345678", "123456789", "1234567890123456789"] {
        for after in [".5", "e3", "E3"] {
            let text = format!("{digits}{after},                        ");
            assert_eq!(super::read_u64(text.as_bytes(), 0), None, "{text}");
        }
    }
    // A number starting inside a payload: the index after it is absolute.
    let text = b"[42,1234567890123,7,                        ]";
    assert_eq!(super::read_u64(text, 4), Some((1_234_567_890_123, 17)));
    assert_eq!(
        super::digits_value(u64::from_le_bytes(*b"12345678")),
        12_345_678
    );
    assert_eq!(
        super::digits_value(u64::from_le_bytes(*b"99999999")),
        99_999_999
    );
    assert_eq!(super::digits_value(u64::from_le_bytes(*b"00000001")), 1);
}

#[test]
fn non_digits_marks_exactly_the_bytes_outside_0_to_9() {
    for byte in 0..=255u8 {
        for position in 0..8 {
            let mut word = *b"01234567";
            word[position] = byte;
            let marked = super::non_digits(u64::from_le_bytes(word));
            let expected = if byte.is_ascii_digit() {
                0
            } else {
                0x80 << (8 * position)
            };
            assert_eq!(marked, expected, "byte {byte:#04x} at {position}");
        }
    }
}
