//! The tantivy index: its schema, opening it, adding and deleting rows, and the per-corp cursors
//! kept in the commit payload.
//!
//! One document per stored row, keyed by `<corpid>#<seq>` (adding a row deletes any older
//! document of that key first, so indexing a row twice is harmless). The cursors ("every row of
//! corp X up to seq N is in the index") are written in the payload of the same tantivy commit as
//! the documents, so the index never claims rows it did not commit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STORED, STRING,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::extract::record_text;
use super::tokenizer::{CjkTokenizer, TOKENIZER_NAME};
use super::SearchError;
use crate::message::Row;
use crate::store::CorpId;

/// The version of the schema and of what goes into it (extraction, tokenizer). An index of
/// another version is rebuilt (`search reindex`, or automatically by the daemon).
pub const SCHEMA_VERSION: u32 = 2;

/// The fields of the schema.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// `<corpid>#<seq>` (raw, for deletes).
    pub key: Field,
    /// The corpid (raw, stored).
    pub corp: Field,
    /// The row's seq (u64, indexed, stored, fast).
    pub seq: Field,
    /// The msgid (stored).
    pub msgid: Field,
    /// `msgtime` in ms (i64, indexed, stored, fast).
    pub msgtime: Field,
    /// The msgtype (raw, stored).
    pub msgtype: Field,
    /// `msgfrom` (raw, stored).
    pub sender: Field,
    /// [`conversation_key`] (raw, stored).
    pub conversation: Field,
    /// 1 = with an external contact (u64, indexed, stored).
    pub external: Field,
    /// 1 = the row could not be decrypted yet (`redecrypt` may fill it later; u64, indexed).
    pub pending: Field,
    /// The searchable text (our tokenizer, positions, stored for snippets).
    pub text: Field,
    /// Everyone the row involves: `msgfrom` and each id of `tolist` (raw, several values): the
    /// review API limits a reviewer's hits to the userids granted inside the query.
    pub participant: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let num = || NumericOptions::default().set_indexed().set_stored().set_fast();
    let text_options = TextOptions::default().set_stored().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER_NAME)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        key: b.add_text_field("key", STRING),
        corp: b.add_text_field("corp", STRING | STORED),
        seq: b.add_u64_field("seq", num()),
        msgid: b.add_text_field("msgid", STORED),
        msgtime: b.add_i64_field("msgtime", num()),
        msgtype: b.add_text_field("msgtype", STRING | STORED),
        sender: b.add_text_field("sender", STRING | STORED),
        conversation: b.add_text_field("conversation", STRING | STORED),
        external: b.add_u64_field("external", INDEXED | STORED | FAST),
        pending: b.add_u64_field("pending", INDEXED),
        text: b.add_text_field("text", text_options),
        participant: b.add_text_field("participant", STRING),
    };
    (b.build(), fields)
}

/// The conversation a row belongs to: `room:<roomid>` for a group, else `pair:<a>|<b>` of the
/// sender and the receivers, sorted (see [`pair_key`]).
pub fn conversation_key(roomid: &str, from: &str, tolist: &str) -> String {
    if !roomid.is_empty() {
        return format!("room:{roomid}");
    }
    let mut people: Vec<&str> = std::iter::once(from).chain(tolist.split(',')).filter(|s| !s.is_empty()).collect();
    people.sort_unstable();
    people.dedup();
    format!("pair:{}", people.join("|"))
}

/// The conversation key of the one-to-one chat of `a` and `b` (either order).
pub fn pair_key(a: &str, b: &str) -> String {
    conversation_key("", a, b)
}

/// The key of a room's conversation.
pub fn room_key(roomid: &str) -> String {
    format!("room:{roomid}")
}

/// External ids (external contacts, other corps, bots) start with these.
const EXTERNAL_PREFIXES: [&str; 3] = ["wo", "wm", "wb"];

/// True when the row is a conversation with an external contact: its msgid ends in `_external`
/// (message-format.md), or the sender or a receiver has an external id.
pub fn is_external(row: &Row) -> bool {
    let ext = |id: &str| EXTERNAL_PREFIXES.iter().any(|p| id.starts_with(p));
    row.msgid.ends_with("_external") || ext(&row.msgfrom) || row.tolist.split(',').any(ext)
}

/// What the commit payload holds.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Payload {
    v: u32,
    cursors: BTreeMap<String, u64>,
}

/// A search index in a directory; opened for writing (one process at a time: tantivy's lock
/// file) or for reading only.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    writer: Option<Mutex<IndexWriter<TantivyDocument>>>,
    dir: PathBuf,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").field("dir", &self.dir).field("writable", &self.writer.is_some()).finish()
    }
}

/// How the writer may use the machine.
#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    /// Indexing threads (at least 1).
    pub threads: usize,
    /// Memory budget of all threads together, bytes (at least 15 MB per thread).
    pub memory_bytes: usize,
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self { threads: 1, memory_bytes: 64 << 20 }
    }
}

impl SearchIndex {
    /// Opens the index in `dir` for writing, creating it (and `dir`) when missing. An index of
    /// another [`SCHEMA_VERSION`] (or schema) is emptied: it is derived data, rebuilt from the
    /// database from the cursors on (which are dropped with it).
    pub fn open_writer(dir: &Path, settings: WriterSettings) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir).map_err(|e| SearchError::Io(dir.to_path_buf(), e))?;
        let (schema, fields) = schema();
        let mut exists = dir.join("meta.json").exists();
        if exists && Index::open_in_dir(dir)?.schema() != schema {
            // Built by another version with other fields: derived data, start again.
            tracing::warn!(dir = %dir.display(), "search index of another schema: rebuilding it");
            wipe(dir)?;
            exists = false;
        }
        let index = if exists { Index::open_in_dir(dir)? } else { Index::create_in_dir(dir, schema)? };
        register(&index);
        let threads = settings.threads.max(1);
        let memory = settings.memory_bytes.max(threads * 15_000_000);
        let writer = index.writer_with_num_threads(threads, memory).map_err(|e| match e {
            tantivy::TantivyError::LockFailure(..) => SearchError::Locked(dir.to_path_buf()),
            other => SearchError::Tantivy(other),
        })?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let this = Self { index, reader, fields, writer: Some(Mutex::new(writer)), dir: dir.to_path_buf() };
        if !exists || this.payload()?.v != SCHEMA_VERSION {
            if exists {
                tracing::warn!(dir = %dir.display(), "search index of another version: rebuilding it");
                this.delete_all()?;
            }
            this.commit(&BTreeMap::new())?;
        }
        Ok(this)
    }

    /// Opens the index in `dir` for reading only (beside a daemon that writes it).
    pub fn open_reader(dir: &Path) -> Result<Self, SearchError> {
        if !dir.join("meta.json").exists() {
            return Err(SearchError::Missing(dir.to_path_buf()));
        }
        let index = Index::open_in_dir(dir)?;
        register(&index);
        let (schema, fields) = schema();
        if index.schema() != schema {
            return Err(SearchError::SchemaChanged(dir.to_path_buf()));
        }
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Self { index, reader, fields, writer: None, dir: dir.to_path_buf() })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The fields.
    pub fn fields(&self) -> Fields {
        self.fields
    }

    /// The tantivy index (for queries).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// A searcher over the last commit seen by [`SearchIndex::reload`].
    pub fn searcher(&self) -> tantivy::Searcher {
        self.reader.searcher()
    }

    /// Sees the latest commit (of this or another process).
    pub fn reload(&self) -> Result<(), SearchError> {
        Ok(self.reader.reload()?)
    }

    fn payload(&self) -> Result<Payload, SearchError> {
        let metas = self.index.load_metas()?;
        Ok(metas.payload.as_deref().and_then(|p| serde_json::from_str(p).ok()).unwrap_or_default())
    }

    /// The committed cursors: every row of corp X with `seq <=` the value is in the index.
    pub fn cursors(&self) -> Result<BTreeMap<String, u64>, SearchError> {
        Ok(self.payload()?.cursors)
    }

    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut IndexWriter<TantivyDocument>) -> tantivy::Result<T>,
    ) -> Result<T, SearchError> {
        let writer = self.writer.as_ref().ok_or(SearchError::ReadOnly)?;
        let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
        Ok(f(&mut w)?)
    }

    fn key(&self, corp: &str, seq: u64) -> Term {
        Term::from_field_text(self.fields.key, &format!("{corp}#{seq}"))
    }

    /// The document of `row` of `corp`.
    pub fn document(&self, corp: &CorpId, row: &Row) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::new();
        doc.add_text(f.key, format!("{corp}#{}", row.seq));
        doc.add_text(f.corp, corp.as_str());
        doc.add_u64(f.seq, row.seq);
        doc.add_text(f.msgid, &row.msgid);
        doc.add_i64(f.msgtime, i64::try_from(row.msgtime).unwrap_or(i64::MAX));
        doc.add_text(f.msgtype, &row.msgtype);
        doc.add_text(f.sender, &row.msgfrom);
        doc.add_text(f.conversation, conversation_key(&row.roomid, &row.msgfrom, &row.tolist));
        doc.add_u64(f.external, u64::from(is_external(row)));
        doc.add_u64(f.pending, u64::from(row.msgdata.is_empty() && row.decrypt_error.is_some()));
        doc.add_text(f.text, record_text(&row.msgtype, &row.msgdata));
        for id in std::iter::once(row.msgfrom.as_str()).chain(row.tolist.split(',')).filter(|s| !s.is_empty()) {
            doc.add_text(f.participant, id);
        }
        doc
    }

    /// Adds (or replaces) the documents of `rows` of `corp`. Visible after [`SearchIndex::commit`].
    pub fn add(&self, corp: &CorpId, rows: &[Row]) -> Result<(), SearchError> {
        let docs: Vec<(Term, TantivyDocument)> =
            rows.iter().map(|r| (self.key(corp.as_str(), r.seq), self.document(corp, r))).collect();
        self.with_writer(|w| {
            for (key, doc) in docs {
                w.delete_term(key);
                w.add_document(doc)?;
            }
            Ok(())
        })
    }

    /// Deletes the documents of rows `seqs` of `corp`.
    pub fn delete_rows(&self, corp: &str, seqs: &[u64]) -> Result<(), SearchError> {
        let keys: Vec<Term> = seqs.iter().map(|s| self.key(corp, *s)).collect();
        self.with_writer(|w| {
            for k in keys {
                w.delete_term(k);
            }
            Ok(())
        })
    }

    /// Deletes every document of `corp`.
    pub fn delete_corp(&self, corp: &str) -> Result<(), SearchError> {
        let term = Term::from_field_text(self.fields.corp, corp);
        self.with_writer(|w| {
            w.delete_term(term);
            Ok(())
        })
    }

    /// Deletes every document.
    pub fn delete_all(&self) -> Result<(), SearchError> {
        self.with_writer(|w| {
            w.delete_all_documents()?;
            Ok(())
        })
    }

    /// Commits what was added and deleted, with `cursors` as the new committed cursors (the
    /// whole map: a corp left out has none any more), then reloads the reader.
    pub fn commit(&self, cursors: &BTreeMap<String, u64>) -> Result<(), SearchError> {
        let payload = serde_json::to_string(&Payload { v: SCHEMA_VERSION, cursors: cursors.clone() })
            .map_err(|e| SearchError::Payload(e.to_string()))?;
        self.with_writer(|w| {
            let mut prepared = w.prepare_commit()?;
            prepared.set_payload(&payload);
            prepared.commit()?;
            Ok(())
        })?;
        self.reload()
    }

    /// Waits for merges to finish (after a bulk build, before measuring the size).
    pub fn wait_merging(self) -> Result<(), SearchError> {
        if let Some(w) = self.writer {
            let w = w.into_inner().unwrap_or_else(|e| e.into_inner());
            w.wait_merging_threads()?;
        }
        Ok(())
    }

    fn range_query(&self, corp: &str, lo: u64, hi: u64) -> tantivy::query::BooleanQuery {
        use std::ops::Bound;
        use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery};
        let f = &self.fields;
        let q: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, Box::new(TermQuery::new(Term::from_field_text(f.corp, corp), IndexRecordOption::Basic))),
            (
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Included(Term::from_field_u64(f.seq, lo)),
                    Bound::Included(Term::from_field_u64(f.seq, hi)),
                )),
            ),
        ];
        BooleanQuery::new(q)
    }

    /// How many documents of `corp` the index has within seqs `lo..=hi`.
    pub fn count_in(&self, corp: &str, lo: u64, hi: u64) -> Result<usize, SearchError> {
        Ok(self.searcher().search(&self.range_query(corp, lo, hi), &tantivy::collector::Count)?)
    }

    /// The seqs of `corp` in the index within `lo..=hi`, sorted.
    pub fn seqs_in(&self, corp: &str, lo: u64, hi: u64) -> Result<Vec<u64>, SearchError> {
        use tantivy::schema::Value as _;
        let searcher = self.searcher();
        let addrs = searcher.search(&self.range_query(corp, lo, hi), &tantivy::collector::DocSetCollector)?;
        let mut seqs = Vec::with_capacity(addrs.len());
        for a in addrs {
            let doc: TantivyDocument = searcher.doc(a)?;
            seqs.extend(doc.get_first(self.fields.seq).and_then(|v| v.as_u64()));
        }
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// The seqs of `corp` whose rows were not decrypted when indexed (at most `limit`).
    pub fn pending_seqs(&self, corp: &str, limit: usize) -> Result<Vec<u64>, SearchError> {
        use tantivy::collector::TopDocs;
        use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
        use tantivy::schema::Value as _;
        let f = &self.fields;
        let q: Vec<(Occur, Box<dyn Query>)> = vec![
            (Occur::Must, Box::new(TermQuery::new(Term::from_field_text(f.corp, corp), IndexRecordOption::Basic))),
            (Occur::Must, Box::new(TermQuery::new(Term::from_field_u64(f.pending, 1), IndexRecordOption::Basic))),
        ];
        let searcher = self.searcher();
        let top = searcher.search(&BooleanQuery::new(q), &TopDocs::with_limit(limit.max(1)))?;
        let mut seqs = Vec::new();
        for (_, a) in top {
            let doc: TantivyDocument = searcher.doc(a)?;
            seqs.extend(doc.get_first(f.seq).and_then(|v| v.as_u64()));
        }
        Ok(seqs)
    }

    /// Documents in the index (after the last reload).
    pub fn num_docs(&self) -> u64 {
        self.searcher().num_docs()
    }
}

/// Removes the files of the index in `dir` (tantivy's files and its lock files; never
/// subdirectories).
fn wipe(dir: &Path) -> Result<(), SearchError> {
    let io = |e| SearchError::Io(dir.to_path_buf(), e);
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_type().map_err(io)?.is_file() {
            std::fs::remove_file(entry.path()).map_err(io)?;
        }
    }
    Ok(())
}

/// Registers our tokenizer with `index`.
fn register(index: &Index) {
    index.tokenizers().register(TOKENIZER_NAME, CjkTokenizer);
}

/// Bytes of the files in `dir` (the index size).
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_keys_and_external() {
        assert_eq!(conversation_key("r1", "a", "b,c"), "room:r1");
        assert_eq!(conversation_key("", "zhang", "li"), "pair:li|zhang");
        assert_eq!(pair_key("li", "zhang"), pair_key("zhang", "li"));
        let mut row = Row { msgid: "m1".into(), msgfrom: "zhang".into(), tolist: "li".into(), ..Row::default() };
        assert!(!is_external(&row));
        row.tolist = "li,wmABC".into();
        assert!(is_external(&row));
        row.tolist = "li".into();
        row.msgid = "m1_external".into();
        assert!(is_external(&row));
    }

    #[test]
    fn cursors_live_in_the_commit_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let corp = CorpId::new("ww1").unwrap();
        let row = |seq: u64, text: &str| Row {
            seq,
            msgid: format!("m{seq}"),
            msgtype: "text".into(),
            msgdata: serde_json::json!({"msgtype":"text","text":{"content":text}}).to_string(),
            ..Row::default()
        };
        {
            let idx = SearchIndex::open_writer(dir.path(), WriterSettings::default()).unwrap();
            assert!(idx.cursors().unwrap().is_empty());
            idx.add(&corp, &[row(1, "一"), row(2, "二")]).unwrap();
            // Added but not committed: neither visible nor claimed.
            assert_eq!(idx.num_docs(), 0);
            idx.commit(&BTreeMap::from([("ww1".to_string(), 2)])).unwrap();
            assert_eq!(idx.num_docs(), 2);
            // Indexing a row again replaces its document.
            idx.add(&corp, &[row(2, "二又")]).unwrap();
            idx.commit(&BTreeMap::from([("ww1".to_string(), 2)])).unwrap();
            assert_eq!(idx.num_docs(), 2);
            assert_eq!(idx.seqs_in("ww1", 0, 10).unwrap(), [1, 2]);
            assert_eq!((idx.count_in("ww1", 2, 10).unwrap(), idx.count_in("ww2", 0, 10).unwrap()), (1, 0));
            // A second writer is refused while the first lives.
            assert!(matches!(
                SearchIndex::open_writer(dir.path(), WriterSettings::default()),
                Err(SearchError::Locked(_))
            ));
        }
        let idx = SearchIndex::open_writer(dir.path(), WriterSettings::default()).unwrap();
        assert_eq!(idx.cursors().unwrap(), BTreeMap::from([("ww1".to_string(), 2)]));
        idx.delete_rows("ww1", &[1]).unwrap();
        idx.commit(&idx.cursors().unwrap()).unwrap();
        assert_eq!(idx.seqs_in("ww1", 0, 10).unwrap(), [2]);
        idx.delete_corp("ww1").unwrap();
        idx.commit(&BTreeMap::new()).unwrap();
        assert_eq!(idx.num_docs(), 0);
        let reader = SearchIndex::open_reader(dir.path()).unwrap();
        assert!(reader.cursors().unwrap().is_empty());
        assert!(matches!(reader.delete_all(), Err(SearchError::ReadOnly)));
    }
}
