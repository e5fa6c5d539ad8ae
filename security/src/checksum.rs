//! Check-digit validators for payment cards, IBANs and national identifiers.
//!
//! Each takes the candidate as matched (separators included) and says whether it is valid.

/// The ASCII digits of `text`, skipping spaces, dashes and dots.
fn digits(text: &str) -> Vec<u8> {
    text.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect()
}

/// Luhn (mod 10) over a digit string.
pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (position, digit) in digits.iter().rev().enumerate() {
        let mut value = u32::from(*digit);
        if position % 2 == 1 {
            value *= 2;
            if value > 9 {
                value -= 9;
            }
        }
        sum += value;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// A payment card: 13–19 digits, a known issuer prefix with a length it issues, and Luhn.
pub fn payment_card(text: &str) -> bool {
    let digits = digits(text);
    let length = digits.len();
    if !(13..=19).contains(&length) || !luhn(&digits) {
        return false;
    }
    let prefix = |count: usize| digits.iter().take(count).fold(0u32, |acc, d| acc * 10 + u32::from(*d));
    let (p1, p2, p3, p4, p6) = (prefix(1), prefix(2), prefix(3), prefix(4), prefix(6));
    match () {
        // Visa
        _ if p1 == 4 => matches!(length, 13 | 16 | 19),
        // Mastercard
        _ if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) => length == 16,
        // American Express
        _ if p2 == 34 || p2 == 37 => length == 15,
        // Discover
        _ if p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || (622126..=622925).contains(&p6) => {
            (16..=19).contains(&length)
        }
        // JCB
        _ if (3528..=3589).contains(&p4) => (16..=19).contains(&length),
        // Diners Club
        _ if p2 == 36 || p2 == 38 || p2 == 39 || (300..=305).contains(&p3) => (14..=19).contains(&length),
        // UnionPay
        _ if p2 == 62 => (16..=19).contains(&length),
        // Maestro
        _ if matches!(p4, 5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761 | 6762 | 6763) => {
            (12..=19).contains(&length)
        }
        _ => false,
    }
}

/// IBAN lengths by country (ISO 13616 registry, the common subset).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// An IBAN: known country, its length, and mod-97 of the rearranged number equal to 1.
pub fn iban(text: &str) -> bool {
    let compact: Vec<u8> = text.bytes().filter(|b| b.is_ascii_alphanumeric()).collect();
    let Some(country) = compact.get(..2) else { return false };
    let Some(&(_, length)) = IBAN_LENGTHS.iter().find(|(code, _)| code.as_bytes() == country) else {
        return false;
    };
    if compact.len() != length {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut remainder = 0u32;
    for byte in rearranged {
        let value = match byte {
            b'0'..=b'9' => u32::from(byte - b'0'),
            b'A'..=b'Z' => u32::from(byte - b'A') + 10,
            _ => return false,
        };
        remainder = if value >= 10 { (remainder * 100 + value) % 97 } else { (remainder * 10 + value) % 97 };
    }
    remainder == 1
}

/// A US SSN `AAA-GG-SSSS`: area not 000, 666 or 9xx; group not 00; serial not 0000.
pub fn us_ssn(text: &str) -> bool {
    let d = digits(text);
    if d.len() != 9 {
        return false;
    }
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = u32::from(d[3]) * 10 + u32::from(d[4]);
    let serial = d[5..].iter().fold(0u32, |acc, x| acc * 10 + u32::from(*x));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// A UK national insurance number: two prefix letters (with the excluded letters and pairs),
/// six digits, suffix A–D.
pub fn uk_nino(text: &str) -> bool {
    let compact: Vec<u8> = text.bytes().filter(|b| b.is_ascii_alphanumeric()).collect();
    if compact.len() != 9 {
        return false;
    }
    let (first, second) = (compact[0], compact[1]);
    let bad_first = b"DFIQUV";
    let bad_second = b"DFIOQUV";
    let prefix = &compact[..2];
    !bad_first.contains(&first)
        && !bad_second.contains(&second)
        && !matches!(prefix, b"BG" | b"GB" | b"NK" | b"KN" | b"TN" | b"NT" | b"ZZ")
        && compact[2..8].iter().all(u8::is_ascii_digit)
        && matches!(compact[8], b'A'..=b'D')
}

/// A Spanish DNI (`12345678Z`) or NIE (`X1234567L`): the letter is the number mod 23.
pub fn es_dni(text: &str) -> bool {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let compact: Vec<u8> = text.bytes().filter(|b| b.is_ascii_alphanumeric()).collect();
    if compact.len() != 9 {
        return false;
    }
    let lead = match compact[0] {
        b'X' => 0,
        b'Y' => 1,
        b'Z' => 2,
        b'0'..=b'9' => u32::from(compact[0] - b'0'),
        _ => return false,
    };
    if !compact[1..8].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let number = compact[1..8].iter().fold(lead, |acc, d| acc * 10 + u32::from(d - b'0'));
    LETTERS.get((number % 23) as usize) == Some(&compact[8])
}

/// An Italian codice fiscale: 16 characters, the last a check letter over the first 15.
pub fn it_codice_fiscale(text: &str) -> bool {
    const ODD: [u32; 36] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, // 0-9
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23, // A-Z
    ];
    let bytes = text.as_bytes();
    if bytes.len() != 16 {
        return false;
    }
    let mut sum = 0;
    for (position, byte) in bytes[..15].iter().enumerate() {
        let index = match byte {
            b'0'..=b'9' => usize::from(byte - b'0'),
            b'A'..=b'Z' => usize::from(byte - b'A') + 10,
            _ => return false,
        };
        // Positions are 1-based in the specification: odd positions use the table.
        sum += if position % 2 == 0 {
            ODD[index]
        } else if index < 10 {
            index as u32
        } else {
            (index - 10) as u32
        };
    }
    u32::from(bytes[15]) == u32::from(b'A') + sum % 26
}

/// A Brazilian CPF: eleven digits, two mod-11 check digits, not all equal.
pub fn br_cpf(text: &str) -> bool {
    let d = digits(text);
    if d.len() != 11 || d.iter().all(|x| *x == d[0]) {
        return false;
    }
    let check = |count: usize| {
        let sum: u32 =
            d[..count].iter().enumerate().map(|(i, x)| u32::from(*x) * (count as u32 + 1 - i as u32)).sum();
        let rest = (sum * 10) % 11;
        if rest == 10 { 0 } else { rest }
    };
    check(9) == u32::from(d[9]) && check(10) == u32::from(d[10])
}

/// An Indian Aadhaar number: twelve digits, not starting with 0 or 1, Verhoeff check digit.
pub fn in_aadhaar(text: &str) -> bool {
    const D: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 8, 7, 6, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let d = digits(text);
    if d.len() != 12 || d[0] < 2 {
        return false;
    }
    let mut c = 0u8;
    for (i, digit) in d.iter().rev().enumerate() {
        c = D[usize::from(c)][usize::from(P[i % 8][usize::from(*digit)])];
    }
    c == 0
}

/// Shannon entropy of a string in bits per byte.
pub fn entropy_bits(text: &str) -> f32 {
    let mut counts = [0u32; 256];
    for byte in text.bytes() {
        counts[usize::from(byte)] += 1;
    }
    let length = text.len() as f32;
    if length == 0.0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|count| **count > 0)
        .map(|count| {
            let p = *count as f32 / length;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_valid_and_invalid_numbers() {
        assert!(payment_card("4111 1111 1111 1111"));
        assert!(!payment_card("4111 1111 1111 1112"));
        assert!(payment_card("378282246310005"));
        assert!(payment_card("5555-5555-5555-4444"));
        assert!(!payment_card("1234567812345670")); // Luhn-valid but no issuer
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(!iban("DE89370400440532013001"));
        assert!(us_ssn("123-45-6789"));
        assert!(!us_ssn("666-45-6789") && !us_ssn("000-12-3456"));
        assert!(!us_ssn("900-12-3456"));
        assert!(uk_nino("AB123456C"));
        assert!(!uk_nino("GB123456C"));
        assert!(es_dni("12345678Z"));
        assert!(!es_dni("12345678A"));
        assert!(es_dni("X1234567L"));
        assert!(it_codice_fiscale("RSSMRA85T10A562S"));
        assert!(!it_codice_fiscale("RSSMRA85T10A562T"));
        assert!(br_cpf("529.982.247-25"));
        assert!(!br_cpf("529.982.247-26"));
        // Exactly one final digit completes a Verhoeff-valid number.
        assert_eq!((0..10).filter(|d| in_aadhaar(&format!("2341 2341 234{d}"))).count(), 1);
        assert!(entropy_bits("aaaa") < 0.01);
    }
}
