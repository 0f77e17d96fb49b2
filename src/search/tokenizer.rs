//! The tokenizer of the `text` field: CJK unigrams and bigrams, Latin (and other alphabetic)
//! words lowercased, digit runs, emoji one by one.
//!
//! Positions count *characters of CJK runs* and *words*: every CJK character takes one position
//! (its unigram and the bigram that starts at it share it), every word and every emoji one
//! position; separators (spaces, punctuation) take none. So a CJK string of n ≥ 2 characters is
//! exactly the chain of its n − 1 bigrams at consecutive positions, and a 1-character query is
//! its unigram: every substring of a CJK run is found ([`super::query`] builds that chain).
//!
//! Words longer than [`MAX_WORD_CHARS`] characters are cut into pieces of that length at
//! consecutive positions, on both sides (documents and queries), so that a long word still
//! matches and no token comes near tantivy's term length limit.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The name the tokenizer is registered under (the `text` field uses it).
pub const TOKENIZER_NAME: &str = "wework_cjk";

/// Longest word token, in characters.
pub const MAX_WORD_CHARS: usize = 64;

/// What a token stands for (the query builder picks unigrams or bigrams by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One CJK character.
    Unigram,
    /// Two adjacent CJK characters (at the position of the first).
    Bigram,
    /// A lowercased run of letters and digits (not CJK), or a piece of one.
    Word,
    /// One emoji or pictographic symbol.
    Symbol,
}

/// One token with its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Kind.
    pub kind: Kind,
    /// The token text (lowercased for words).
    pub text: String,
    /// Byte offsets in the input.
    pub from: usize,
    /// End byte offset (exclusive).
    pub to: usize,
    /// Position (see the module documentation).
    pub position: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Cjk,
    Word,
    Symbol,
    Sep,
}

/// Han (with extensions and compatibility ideographs), kana, Hangul, bopomofo.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x3100..=0x312F    // bopomofo
        | 0x3130..=0x318F    // hangul compatibility jamo
        | 0x31F0..=0x31FF    // katakana extension
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // hangul syllables
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0x1100..=0x11FF    // hangul jamo
        | 0x20000..=0x3FFFF) // extensions B and later
}

/// Emoji and pictographs (each a token of its own). Variation selectors and the zero-width
/// joiner are separators.
fn is_symbol(c: char) -> bool {
    matches!(c as u32,
        0x00A9 | 0x00AE | 0x203C | 0x2049 | 0x2122 | 0x2139
        | 0x2190..=0x21FF
        | 0x2300..=0x23FF
        | 0x24C2
        | 0x25A0..=0x27BF
        | 0x2900..=0x297F
        | 0x2B00..=0x2BFF
        | 0x3030 | 0x303D | 0x3297 | 0x3299
        | 0x1F000..=0x1FAFF)
}

fn class(c: char) -> Class {
    if is_cjk(c) {
        Class::Cjk
    } else if c.is_alphanumeric() {
        Class::Word
    } else if is_symbol(c) {
        Class::Symbol
    } else {
        Class::Sep
    }
}

/// Every token of `text`, in order of position (a unigram before the bigram at its position).
pub fn pieces(text: &str) -> Vec<Piece> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| chars.get(i + 1).map_or(text.len(), |(b, _)| *b);
    let mut out = Vec::new();
    let mut position = 0usize;
    let mut i = 0usize;
    while let Some(&(from, c)) = chars.get(i) {
        match class(c) {
            Class::Cjk => {
                let to = end_of(i);
                out.push(Piece { kind: Kind::Unigram, text: text[from..to].to_string(), from, to, position });
                if let Some(&(_, next)) = chars.get(i + 1) {
                    if is_cjk(next) {
                        let to2 = end_of(i + 1);
                        out.push(Piece {
                            kind: Kind::Bigram,
                            text: text[from..to2].to_string(),
                            from,
                            to: to2,
                            position,
                        });
                    }
                }
                position += 1;
                i += 1;
            }
            Class::Word => {
                let mut word = String::new();
                let mut start = from;
                let mut n = 0usize;
                while let Some(&(b, c)) = chars.get(i) {
                    if class(c) != Class::Word {
                        break;
                    }
                    if n == MAX_WORD_CHARS {
                        out.push(Piece {
                            kind: Kind::Word,
                            text: std::mem::take(&mut word),
                            from: start,
                            to: b,
                            position,
                        });
                        position += 1;
                        start = b;
                        n = 0;
                    }
                    word.extend(c.to_lowercase());
                    n += 1;
                    i += 1;
                }
                let to = chars.get(i).map_or(text.len(), |(b, _)| *b);
                out.push(Piece { kind: Kind::Word, text: word, from: start, to, position });
                position += 1;
            }
            Class::Symbol => {
                let to = end_of(i);
                out.push(Piece { kind: Kind::Symbol, text: text[from..to].to_string(), from, to, position });
                position += 1;
                i += 1;
            }
            Class::Sep => i += 1,
        }
    }
    out
}

/// The tantivy tokenizer (register it under [`TOKENIZER_NAME`]).
#[derive(Debug, Clone, Default)]
pub struct CjkTokenizer;

/// The token stream of [`CjkTokenizer`].
#[derive(Debug)]
pub struct CjkTokenStream {
    tokens: std::vec::IntoIter<Piece>,
    token: Token,
}

impl Tokenizer for CjkTokenizer {
    type TokenStream<'a> = CjkTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CjkTokenStream {
        CjkTokenStream { tokens: pieces(text).into_iter(), token: Token::default() }
    }
}

impl TokenStream for CjkTokenStream {
    fn advance(&mut self) -> bool {
        match self.tokens.next() {
            Some(p) => {
                self.token = Token {
                    offset_from: p.from,
                    offset_to: p.to,
                    position: p.position,
                    text: p.text,
                    position_length: 1,
                };
                true
            }
            None => false,
        }
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<(Kind, String, usize)> {
        pieces(s).into_iter().map(|p| (p.kind, p.text, p.position)).collect()
    }

    #[test]
    fn cjk_unigrams_and_bigrams_share_positions() {
        assert_eq!(
            texts("微信好"),
            vec![
                (Kind::Unigram, "微".into(), 0),
                (Kind::Bigram, "微信".into(), 0),
                (Kind::Unigram, "信".into(), 1),
                (Kind::Bigram, "信好".into(), 1),
                (Kind::Unigram, "好".into(), 2),
            ]
        );
    }

    #[test]
    fn latin_words_digits_emoji_and_separators() {
        assert_eq!(
            texts("用iPhone拍了3张，Hello-World 2024 👍🏻!"),
            vec![
                (Kind::Unigram, "用".into(), 0),
                (Kind::Word, "iphone".into(), 1),
                (Kind::Unigram, "拍".into(), 2),
                (Kind::Bigram, "拍了".into(), 2),
                (Kind::Unigram, "了".into(), 3),
                (Kind::Word, "3".into(), 4),
                (Kind::Unigram, "张".into(), 5),
                (Kind::Word, "hello".into(), 6),
                (Kind::Word, "world".into(), 7),
                (Kind::Word, "2024".into(), 8),
                (Kind::Symbol, "👍".into(), 9),
                (Kind::Symbol, "🏻".into(), 10),
            ]
        );
        // The ZWJ and the variation selector are separators; offsets are byte offsets.
        let p = pieces("a\u{200d}❤\u{fe0f}");
        assert_eq!(p.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(), ["a", "❤"]);
        assert_eq!((p[1].from, p[1].to), (4, 7));
        assert!(pieces("  ，。!? ").is_empty());
    }

    #[test]
    fn long_words_are_cut_into_consecutive_pieces() {
        let word = "A".repeat(MAX_WORD_CHARS * 2 + 3);
        let p = pieces(&word);
        assert_eq!(p.len(), 3);
        assert_eq!(p.iter().map(|p| p.text.chars().count()).collect::<Vec<_>>(), [64, 64, 3]);
        assert_eq!(p.iter().map(|p| p.position).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(p[0].text.chars().all(|c| c == 'a'));
        assert_eq!(p[2].to, word.len());
    }

    #[test]
    fn the_tantivy_stream_yields_the_same_tokens() {
        let mut t = CjkTokenizer;
        let mut s = t.token_stream("你好 ab");
        let mut seen = Vec::new();
        while let Some(tok) = s.next() {
            seen.push((tok.text.clone(), tok.position, tok.offset_from, tok.offset_to));
        }
        assert_eq!(
            seen,
            vec![("你".into(), 0, 0, 3), ("你好".into(), 0, 0, 6), ("好".into(), 1, 3, 6), ("ab".into(), 2, 7, 9)]
        );
    }
}
