//! [`TokenLayout`]: where the behaviour tokens of some rows of a batch go in a padded
//! `[R, L]` grid (row-major), shared by SRP pre-training and `CtrNet`'s SRP inputs.

use crate::train::Sequence;

/// The most recent `len` behaviours of chosen rows, laid out in a `[rows, len]` grid.
#[derive(Debug, Default, Clone)]
pub(crate) struct TokenLayout {
    /// Item id of each real token, row by row, most recent first.
    pub ids: Vec<u64>,
    /// Category of each real token (empty when the batch has no behaviour categories).
    pub categories: Vec<u64>,
    /// Grid cell (`row * len + position`) of each real token.
    pub cells: Vec<u32>,
    /// `[rows, len]`, true at real tokens.
    pub mask: Vec<bool>,
    /// Grid rows.
    pub rows: usize,
    /// Grid length `L`.
    pub len: usize,
}

impl TokenLayout {
    /// Lays out rows `rows` of `sequence` (each truncated to its `len` most recent
    /// behaviours); the buffers keep their capacity.
    pub fn fill(&mut self, sequence: &Sequence, rows: impl IntoIterator<Item = usize>, len: usize) {
        self.ids.clear();
        self.categories.clear();
        self.cells.clear();
        self.mask.clear();
        self.len = len;
        self.rows = 0;
        for b in rows {
            let ids = sequence.row(b);
            let n = ids.len().min(len);
            let start = self.rows * len;
            self.ids.extend_from_slice(&ids[..n]);
            let categories = sequence.row_categories(b);
            if !categories.is_empty() {
                self.categories.extend_from_slice(&categories[..n]);
            }
            self.cells.extend((0..n).map(|j| (start + j) as u32));
            self.mask.extend((0..len).map(|j| j < n));
            self.rows += 1;
        }
        // Categories are all-or-nothing: a batch without them yields none for any row.
        if self.categories.len() != self.ids.len() {
            self.categories.clear();
        }
    }

    /// Number of real tokens.
    pub fn tokens(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_truncated_to_the_most_recent_and_padded() {
        let sequence = Sequence {
            ids: vec![1, 2, 3, 4, 5, 6],
            categories: vec![10, 20, 30, 40, 50, 60],
            offsets: vec![0, 4, 4, 6],
            max_len: 4,
        };
        let mut layout = TokenLayout::default();
        layout.fill(&sequence, [0, 1, 2], 3);
        assert_eq!(layout.rows, 3);
        assert_eq!(layout.ids, vec![1, 2, 3, 5, 6]);
        assert_eq!(layout.categories, vec![10, 20, 30, 50, 60]);
        assert_eq!(layout.cells, vec![0, 1, 2, 6, 7]);
        assert_eq!(
            layout.mask,
            vec![true, true, true, false, false, false, true, true, false]
        );
        // A subset of rows, without categories.
        let bare = Sequence {
            categories: Vec::new(),
            ..sequence
        };
        layout.fill(&bare, [2], 5);
        assert_eq!((layout.rows, layout.tokens()), (1, 2));
        assert!(layout.categories.is_empty());
        assert_eq!(layout.cells, vec![0, 1]);
    }
}
