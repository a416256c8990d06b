//! Keyset pagination: how every list of the admin API reads one page.
//!
//! A list has a fixed order over columns that never change once a row exists (its creation time
//! and id, an entry's number, ...), ending in a unique one. A page is the rows strictly after a
//! position in that order — the sort key of the previous page's last row — never an `OFFSET`: the
//! database seeks to the position through an index on the tenant-leading columns, so page 300 costs
//! what page 1 does, and a position stays meaningful after its row is deleted (retention prunes
//! events and logs) or while rows are inserted between pages. Every query also filters by the
//! tenant of the caller's credential, so a position only ever selects within that tenant.
//!
//! Each query reads one row more than the page holds to know whether another page follows
//! ([`Page::more`]) without a count.

/// The largest page any list returns.
pub const MAX_PAGE: u32 = 1_000;

/// The page size of a list when the caller gives none.
pub const DEFAULT_PAGE: u32 = 100;

/// Where a page starts and how long it is. `after` is the sort key of the previous page's last
/// row (`None`: the first page); its shape is the list's (`(created_at, id)`, an entry id, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest<K> {
    /// The sort key of the previous page's last row; rows strictly after it are read.
    pub after: Option<K>,
    /// At most this many rows (clamped to `1..=`[`MAX_PAGE`]).
    pub limit: u32,
}

/// The first page of [`DEFAULT_PAGE`] rows.
impl<K> Default for PageRequest<K> {
    fn default() -> Self {
        Self::first(DEFAULT_PAGE)
    }
}

impl<K> PageRequest<K> {
    /// The first page of `limit` rows.
    pub fn first(limit: u32) -> Self {
        Self { after: None, limit }
    }

    /// The rows after `after`, at most `limit`.
    pub fn after(after: Option<K>, limit: u32) -> Self {
        Self { after, limit }
    }

    /// The page size, within `1..=MAX_PAGE`.
    pub fn size(&self) -> u32 {
        self.limit.clamp(1, MAX_PAGE)
    }

    /// The `LIMIT` a query binds: one row more than the page, to see whether more follow.
    pub(crate) fn fetch(&self) -> i64 {
        i64::from(self.size()) + 1
    }
}

/// One page of a list, in the list's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Whether rows follow the last one (the next page is not empty, as of this read).
    pub more: bool,
}

impl<T> Page<T> {
    /// The page of `rows` read with a `LIMIT` of [`PageRequest::fetch`]: the extra row, when
    /// there is one, only says that more follow.
    pub(crate) fn of<K>(mut rows: Vec<T>, request: &PageRequest<K>) -> Self {
        let size = request.size() as usize;
        let more = rows.len() > size;
        rows.truncate(size);
        Self { items: rows, more }
    }

    /// The same page with each row mapped.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), more: self.more }
    }

    /// The last row, when another page follows it (what the next page's position is taken from).
    pub fn last_if_more(&self) -> Option<&T> {
        if self.more { self.items.last() } else { None }
    }
}

/// A `(sort key, id)` position as two bindable values (`NULL`, `NULL` for the first page).
pub(crate) fn split_after(page: &PageRequest<(i64, String)>) -> (Option<i64>, Option<&str>) {
    match &page.after {
        Some((at, id)) => (Some(*at), Some(id.as_str())),
        None => (None, None),
    }
}
