//! The fast path of the JSON decoder: one pass over a message of the common, plain shape.
//!
//! The wire format is written by producers we know, and almost every message has the same
//! shape: one flat object, the known keys once each, integers without fraction or exponent,
//! strings without escapes, short decimal numbers in `item_content`. [`parse_plain`] reads
//! exactly that shape in
//! one pass over the bytes, with the behaviour lists (most of a message: 2 x 50 to 2 x 1,000
//! ids of up to 20 digits) read by finding each number's length first and then converting its
//! digits eight at a time ([`read_u64`]).
//!
//! Anything else returns `None` and the caller re-reads the message through the serde path
//! ([`super::json`]), which makes every accept/reject decision and error message for it: an
//! unknown or repeated key, escapes, fractions or signs where none belong, an overflowing
//! number, a content number whose rounding is not certain (see [`Cursor::float`]), a list
//! longer than `max-seq-len` or `content-dim`, trailing bytes, malformed JSON. So the
//! fast path only ever accepts what the serde path accepts, with the same values (a property
//! test mutates generated messages and compares both).

use super::columns::{EventColumns, Limits, Row};

/// `10^0 ..= 10^22`: the powers of ten an f64 holds exactly.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Names of the `domain` values, in order (index 1 = ad); as in [`super::json`].
const DOMAINS: [&[u8]; 2] = [b"natural", b"ad"];
/// Names of the `device` values, in code order.
const DEVICES: [&[u8]; 4] = [b"unknown", b"ios", b"android", b"web"];

/// The fields, as bits of the `seen` mask.
const SCHEMA_VERSION: u16 = 1 << 0;
const EVENT_ID: u16 = 1 << 1;
const EVENT_TIME: u16 = 1 << 2;
const DOMAIN: u16 = 1 << 3;
const USER_ID: u16 = 1 << 4;
const ITEM_ID: u16 = 1 << 5;
const CATEGORY_ID: u16 = 1 << 6;
const POSITION: u16 = 1 << 7;
const HOUR: u16 = 1 << 8;
const DEVICE: u16 = 1 << 9;
const HIST_ITEM_IDS: u16 = 1 << 10;
const HIST_CATEGORY_IDS: u16 = 1 << 11;
const ITEM_CONTENT: u16 = 1 << 12;
const LABEL: u16 = 1 << 13;
/// Every field but the optional `item_content`.
const REQUIRED: u16 = (1 << 14) - 1 - ITEM_CONTENT;

/// Parses `text` if it has the plain shape (see the module docs), appending its variable-length
/// parts to the tails of `cols`. `None`: not plain; the tails may hold a partial row, which the
/// caller rolls back before taking the serde path. The returned row is not checked yet.
pub(super) fn parse_plain(cols: &mut EventColumns, text: &[u8], limits: &Limits) -> Option<Row> {
    let mut p = Cursor { text, at: 0 };
    let mut row = Row::default();
    let mut seen = 0u16;
    p.ws();
    p.byte(b'{')?;
    p.ws();
    loop {
        let key = p.plain_string()?;
        p.ws();
        p.byte(b':')?;
        p.ws();
        let bit = match key {
            b"schema_version" => {
                (p.integer()? == 1).then_some(())?;
                SCHEMA_VERSION
            }
            b"event_id" => {
                cols.event_id.extend_from_slice(p.plain_string()?);
                EVENT_ID
            }
            b"event_time" => {
                row.event_time = i64::try_from(p.integer()?).ok()?;
                EVENT_TIME
            }
            b"domain" => {
                row.domain_ad = p.name(&DOMAINS)? == 1;
                DOMAIN
            }
            b"user_id" => {
                row.user_id = p.unsigned()?;
                USER_ID
            }
            b"item_id" => {
                row.item_id = p.unsigned()?;
                ITEM_ID
            }
            b"category_id" => {
                row.category_id = p.unsigned()?;
                CATEGORY_ID
            }
            b"position" => {
                row.position = u32::try_from(p.unsigned()?).ok()?;
                POSITION
            }
            b"hour" => {
                row.hour = p.integer()?;
                HOUR
            }
            b"device" => {
                row.device = p.name(&DEVICES)? as u8;
                DEVICE
            }
            b"hist_item_ids" => {
                p.ids(&mut cols.hist_items, limits.max_seq_len)?;
                HIST_ITEM_IDS
            }
            b"hist_category_ids" => {
                p.ids(&mut cols.hist_cats, limits.max_seq_len)?;
                HIST_CATEGORY_IDS
            }
            b"item_content" => {
                row.content_present = p.content(&mut cols.content, limits.content_dim)?;
                ITEM_CONTENT
            }
            b"label" => {
                row.label = p.integer()?;
                LABEL
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
        p.ws();
        match p.next()? {
            b',' => p.ws(),
            b'}' => break,
            _ => return None,
        }
    }
    p.ws();
    (p.at == text.len() && seen & REQUIRED == REQUIRED).then_some(row)
}

/// A position in the message.
struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    #[inline]
    fn byte(&mut self, expected: u8) -> Option<()> {
        (self.next()? == expected).then_some(())
    }

    /// Skips JSON whitespace.
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.text.get(self.at..end)? == word).then_some(())?;
        self.at = end;
        Some(())
    }

    /// A string without escapes or control characters; its bytes between the quotes.
    #[inline]
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        self.byte(b'"')?;
        let start = self.at;
        loop {
            match self.next()? {
                b'"' => return Some(&self.text[start..self.at - 1]),
                // Escapes, control characters and non-ASCII bytes go to the serde path, which
                // checks UTF-8 (so this path never has to validate a whole message).
                b'\\' | 0..=0x1f | 0x80.. => return None,
                _ => {}
            }
        }
    }

    /// One of `names`, as its index.
    fn name(&mut self, names: &[&[u8]]) -> Option<usize> {
        let s = self.plain_string()?;
        names.iter().position(|n| *n == s)
    }

    /// An unsigned integer (no sign) that fits a u64.
    #[inline]
    fn unsigned(&mut self) -> Option<u64> {
        let (value, end) = read_u64(self.text, self.at)?;
        self.at = end;
        Some(value)
    }

    /// An integer with an optional minus sign, of at most u64 magnitude (what serde reads as
    /// an i64 or a u64).
    fn integer(&mut self) -> Option<i128> {
        if self.peek() == Some(b'-') {
            self.at += 1;
            let magnitude = self.unsigned()?;
            // serde reads negatives as i64: -2^63 is the smallest.
            (magnitude <= 1 << 63).then_some(-i128::from(magnitude))
        } else {
            self.unsigned().map(i128::from)
        }
    }

    /// `item_content`: `null` (false) or a list of at most `dim` numbers appended to `out`
    /// (true).
    fn content(&mut self, out: &mut Vec<f32>, dim: usize) -> Option<bool> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            return Some(false);
        }
        self.list(out, dim, Self::float)?;
        Some(true)
    }

    /// A JSON list whose elements `element` reads, appended to `out`: at most `max` of them.
    /// The common layout (`[1,2,3]`, no whitespace) is decided by the one byte after each
    /// element.
    #[inline]
    fn list<T>(
        &mut self,
        out: &mut Vec<T>,
        max: usize,
        mut element: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<()> {
        let end = out.len().saturating_add(max);
        self.byte(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Some(());
        }
        out.reserve(max.min(1024));
        loop {
            let x = element(self)?;
            if out.len() == end {
                return None;
            }
            out.push(x);
            let separator = match self.peek() {
                Some(b @ (b',' | b']')) => {
                    self.at += 1;
                    b
                }
                _ => {
                    self.ws();
                    self.next()?
                }
            };
            match separator {
                b',' => self.ws(),
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A JSON number read as an f32 exactly as serde_json reads it, or `None` where that is
    /// not certain. serde_json (without `float_roundtrip`) computes `significand * 10^exp` (or
    /// `/ 10^-exp`) in f64 and the f32 visitor narrows it. With at most 15 significant digits
    /// and `|exp| <= 22` both operands are exact and the one f64 operation is correctly
    /// rounded, so it equals the correctly rounded `str::parse::<f64>`; anything else is left
    /// to serde.
    fn float(&mut self) -> Option<f32> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        // The significand's digits (integer and fraction parts, the point skipped), wrapping:
        // more than 15 of them are declined below, before the value is used.
        let mut significand = 0u64;
        let mut digits = 0usize;
        let mut exponent = 0i64;
        let mut push = |d: u8| {
            significand = significand
                .wrapping_mul(10)
                .wrapping_add(u64::from(d - b'0'));
        };
        match self.next()? {
            b'0' => {}
            d @ b'1'..=b'9' => {
                push(d);
                digits += 1;
                while let Some(d @ b'0'..=b'9') = self.peek() {
                    push(d);
                    self.at += 1;
                    digits += 1;
                }
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            let before = self.at;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                push(d);
                self.at += 1;
            }
            let fraction = self.at - before;
            if fraction == 0 {
                return None;
            }
            digits += fraction;
            exponent -= fraction as i64;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            let negative = match self.peek() {
                Some(b'-') => {
                    self.at += 1;
                    true
                }
                Some(b'+') => {
                    self.at += 1;
                    false
                }
                _ => false,
            };
            let before = self.at;
            let mut e = 0i64;
            while let Some(d @ b'0'..=b'9') = self.peek() {
                self.at += 1;
                e = e.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
                if e > 1_000 {
                    return None;
                }
            }
            if self.at == before {
                return None;
            }
            exponent += if negative { -e } else { e };
        }
        if digits > 15 || !(-22..=22).contains(&exponent) {
            return None;
        }
        // Both operands exact (significand < 10^15 < 2^53, 10^|exponent| <= 10^22), so the one
        // operation is correctly rounded: what serde_json computes and what `str::parse` gives.
        let power = POWERS_OF_TEN[exponent.unsigned_abs() as usize];
        let magnitude = if exponent < 0 {
            significand as f64 / power
        } else {
            significand as f64 * power
        };
        let value = if negative { -magnitude } else { magnitude };
        Some(value as f32)
    }

    /// A list of unsigned ids appended to `out`, at most `max` of them.
    fn ids(&mut self, out: &mut Vec<u64>, max: usize) -> Option<()> {
        self.list(out, max, Self::unsigned)
    }
}

/// Reads an unsigned JSON integer starting at `i`: its value and the index after its last
/// digit. `None` when there is no digit at `i`, the number has a leading zero, does not fit a
/// u64, or continues as a fraction or exponent.
#[inline]
fn read_u64(raw: &[u8], i: usize) -> Option<(u64, usize)> {
    match raw
        .get(i..i + 24)
        .and_then(|w| <&[u8; 24]>::try_from(w).ok())
    {
        Some(window) => read_u64_in_window(window).map(|(value, len)| (value, i + len)),
        None => read_u64_near_end(raw, i),
    }
}

/// [`read_u64`] where at least 24 bytes remain: the length of the digit run is found first
/// (three words checked at once), then the digits are converted right-aligned in blocks of
/// eight, with no per-digit loop or branch. Runs of 20 or more digits (at most `u64::MAX`'s
/// 20, which needs overflow checks) go to [`read_u64_near_end`].
#[inline]
fn read_u64_in_window(window: &[u8; 24]) -> Option<(u64, usize)> {
    let word = |k: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&window[k..k + 8]);
        u64::from_le_bytes(bytes)
    };
    let (a, b, c) = (word(0), word(8), word(16));
    let len = match (non_digits(a), non_digits(b), non_digits(c)) {
        (m, _, _) if m != 0 => m.trailing_zeros() as usize / 8,
        (_, m, _) if m != 0 => 8 + m.trailing_zeros() as usize / 8,
        (_, _, m) if m != 0 => 16 + m.trailing_zeros() as usize / 8,
        _ => return read_u64_near_end(window, 0),
    };
    if len == 0 {
        return None;
    }
    if len > 19 {
        return read_u64_near_end(window, 0);
    }
    // "0" alone is fine; "01" is not JSON. After the digits, "." or an exponent make a float.
    if (window[0] == b'0' && len > 1) || matches!(window[len], b'.' | b'e' | b'E') {
        return None;
    }
    // The leading len % 8 digits, then each full block of eight.
    let head = len % 8;
    let mut value = if head == 0 {
        0
    } else {
        // Digits to the top of the word, '0's below them: the block's value is the head's.
        let shift = 8 * (8 - head) as u32;
        digits_value((a << shift) | (ASCII_ZEROS >> (64 - shift)))
    };
    let mut at = head;
    while at < len {
        value = value * 100_000_000 + digits_value(word(at));
        at += 8;
    }
    Some((value, len))
}

/// Bytes of `word` that are not ASCII digits: the high bit of each such byte set, all other
/// bits clear.
#[inline]
fn non_digits(word: u64) -> u64 {
    const LOW_SEVEN: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A digit byte becomes 0..=9; adding 0x76 to the low seven bits carries into the high
    // bit exactly when they are 10 or more (and never out of the byte); the `| x` keeps the
    // bytes whose high bit was set already.
    let x = word ^ ASCII_ZEROS;
    (((x & LOW_SEVEN) + 0x7676_7676_7676_7676) | x) & HIGH
}

/// [`read_u64`] one digit at a time, with overflow checks: where fewer than 24 bytes remain
/// (the end of a payload) and for numbers of 20 or more digits.
fn read_u64_near_end(raw: &[u8], i: usize) -> Option<(u64, usize)> {
    let first = *raw.get(i)?;
    if !first.is_ascii_digit() {
        return None;
    }
    let mut value = u64::from(first - b'0');
    let mut j = i + 1;
    if first == b'0' {
        return match raw.get(j) {
            Some(b'0'..=b'9' | b'.' | b'e' | b'E') => None,
            _ => Some((0, j)),
        };
    }
    while let Some(&b) = raw.get(j)
        && b.is_ascii_digit()
    {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        j += 1;
    }
    match raw.get(j) {
        Some(b'.' | b'e' | b'E') => None,
        _ => Some((value, j)),
    }
}

/// `'0'` in every byte.
const ASCII_ZEROS: u64 = 0x3030_3030_3030_3030;

/// The value of eight ASCII digits read as one little-endian word (first digit in the lowest
/// byte; the caller has checked they are digits). SWAR: combined pairwise in three
/// multiplications instead of eight dependent multiply-adds.
#[inline]
fn digits_value(word: u64) -> u64 {
    let d = word - ASCII_ZEROS; // byte k = digit k, most significant digit first
    // Byte 2k becomes the two-digit number of digits 2k, 2k+1 (at most 99: no carries).
    let pairs = d * 10 + (d >> 8);
    // Pairs 1 and 3 (bytes 0 and 4) and pairs 2 and 4 (bytes 2 and 6) weighted into the upper
    // half: pair1 * 10^6 + pair2 * 10^4 + pair3 * 10^2 + pair4.
    const LANES: u64 = 0x0000_00FF_0000_00FF;
    let high = (pairs & LANES).wrapping_mul(100 + (1_000_000 << 32));
    let low = ((pairs >> 16) & LANES).wrapping_mul(1 + (10_000 << 32));
    high.wrapping_add(low) >> 32
}

#[cfg(test)]
mod tests;
