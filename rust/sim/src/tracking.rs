//! Change tracking (which objects changed since a tick) and the interest grid (which objects lie
//! near a point), both maintained incrementally so neither question scans every object.
//!
//! How it works:
//! - **Changes**: each object has a last-changed tick (dense table indexed by id: ids are never
//!   reused), and every change appends `(tick, id)` to a log kept in tick order. `changed_since(t)`
//!   binary-searches the first entry after `t` and keeps entries that are still their object's
//!   latest. Superseded entries are compacted away once they outnumber the live ones, so the log
//!   stays proportional to the number of objects and the cost is amortised O(changes).
//! - **Interest**: a hash grid of cubic cells; an object sits in the cell of its position and moves
//!   cell only when it crosses a border. Objects larger than a cell live in a short separate list
//!   checked by every query (terrain, big static geometry).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::state::{ObjectId, Tick};

/// Tick value of "never changed / removed" in the dense table.
const GONE: Tick = Tick::MAX;

/// Per-object change ticks plus an ordered log of changes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct ChangeLog {
    /// Indexed by object id: the tick of its latest change, `GONE` when removed.
    last_changed: Vec<Tick>,
    /// `(tick, id)` in non-decreasing tick order; may hold superseded entries.
    log: Vec<(Tick, ObjectId)>,
    live: usize,
    /// `(tick, id)` of removals, in tick order, trimmed to `removal_horizon` ticks.
    removed: Vec<(Tick, ObjectId)>,
    /// The subset of `removed` that were player avatars (which persistence leaves out), trimmed
    /// alike.
    #[serde(default)]
    removed_avatars: Vec<(Tick, ObjectId)>,
    /// Latest tick of a removal dropped by the trimming: `removed_since(t)` is complete only for
    /// `t` at or above it (0: nothing dropped yet).
    #[serde(default)]
    forgotten_through: Tick,
}

/// How many ticks of removals are remembered for `removed_since` (one minute at 60 Hz).
const REMOVAL_HORIZON: Tick = 3600;

impl ChangeLog {
    /// Records that `id` changed at `tick` (ticks must not go backwards).
    pub fn touch(&mut self, id: ObjectId, tick: Tick) {
        let index = id as usize;
        if index >= self.last_changed.len() {
            self.last_changed.resize(index + 1, GONE);
        }
        let previous = self.last_changed[index];
        if previous == tick {
            return;
        }
        if previous == GONE {
            self.live += 1;
        }
        self.last_changed[index] = tick;
        self.log.push((tick, id));
        if self.log.len() > 2 * self.live + 1024 {
            self.compact();
        }
    }

    /// Forgets `id` (it was removed at `tick`).
    pub fn remove(&mut self, id: ObjectId, tick: Tick) {
        if let Some(slot) = self.last_changed.get_mut(id as usize)
            && *slot != GONE
        {
            *slot = GONE;
            self.live -= 1;
        }
        self.removed.push((tick, id));
        let horizon = tick.saturating_sub(REMOVAL_HORIZON);
        // Removals are pushed in tick order, so the expired ones form a prefix.
        let expired = self.removed.partition_point(|(t, _)| *t < horizon);
        if expired > 0 {
            self.forgotten_through = self.forgotten_through.max(self.removed[expired - 1].0);
            self.removed.drain(..expired);
        }
        let expired = self.removed_avatars.partition_point(|(t, _)| *t < horizon);
        self.removed_avatars.drain(..expired);
    }

    /// Forgets the avatar `id` (removed at `tick`), remembering that it was an avatar.
    pub fn remove_avatar(&mut self, id: ObjectId, tick: Tick) {
        self.removed_avatars.push((tick, id));
        self.remove(id, tick);
    }

    /// Ids removed strictly after `tick` that were not avatars (within the last minute of ticks).
    pub fn removed_objects_since(&self, tick: Tick) -> Vec<ObjectId> {
        let start = self.removed_avatars.partition_point(|(t, _)| *t <= tick);
        let avatars = &self.removed_avatars[start..];
        let mut removed = self.removed_since(tick);
        if !avatars.is_empty() {
            removed.retain(|id| !avatars.iter().any(|(_, avatar)| avatar == id));
        }
        removed
    }

    /// Whether [`ChangeLog::removed_since`] of `tick` lists every removal after it (removals
    /// older than the horizon are forgotten).
    pub fn removals_complete_since(&self, tick: Tick) -> bool {
        tick >= self.forgotten_through
    }

    /// The tick of `id`'s latest change.
    pub fn last_changed(&self, id: ObjectId) -> Option<Tick> {
        self.last_changed
            .get(id as usize)
            .copied()
            .filter(|t| *t != GONE)
    }

    /// Ids changed strictly after `tick`, ordered by change tick then by the order of changes.
    pub fn changed_since(&self, tick: Tick) -> Vec<ObjectId> {
        let start = self.log.partition_point(|(t, _)| *t <= tick);
        self.log[start..]
            .iter()
            .filter(|(t, id)| self.last_changed[*id as usize] == *t)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Ids removed strictly after `tick` (within the last minute of ticks).
    pub fn removed_since(&self, tick: Tick) -> Vec<ObjectId> {
        let start = self.removed.partition_point(|(t, _)| *t <= tick);
        self.removed[start..].iter().map(|(_, id)| *id).collect()
    }

    fn compact(&mut self) {
        let last_changed = &self.last_changed;
        self.log.retain(|(t, id)| last_changed[*id as usize] == *t);
    }
}

/// Integer cell coordinates.
pub(crate) type Cell = (i32, i32, i32);

/// Where an object sits in the grid.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Placement {
    Cell(Cell),
    Large,
}

/// Spatial hash grid over object positions.
#[derive(Clone, Debug)]
pub(crate) struct InterestGrid {
    cell_size: f32,
    cells: HashMap<Cell, Vec<ObjectId>>,
    /// Objects too large for one cell, with their bounding radius (sorted by id).
    large: Vec<ObjectId>,
    /// Indexed by id: current placement, position and bounding radius.
    entries: Vec<Option<(Placement, [f32; 3], f32)>>,
}

impl InterestGrid {
    /// An empty grid of `cell_size` metres (clamped to at least 1 m).
    pub fn new(cell_size: f32) -> Self {
        let cell_size = if cell_size.is_finite() {
            cell_size.max(1.0)
        } else {
            16.0
        };
        InterestGrid {
            cell_size,
            cells: HashMap::new(),
            large: Vec::new(),
            entries: Vec::new(),
        }
    }

    fn cell_of(&self, p: [f32; 3]) -> Cell {
        let f = |c: f32| (c / self.cell_size).floor() as i32;
        (f(p[0]), f(p[1]), f(p[2]))
    }

    /// Inserts or moves `id` to `position`; cheap when it stays in its cell.
    pub fn update(&mut self, id: ObjectId, position: [f32; 3], radius: f32) {
        let placement = if radius > self.cell_size {
            Placement::Large
        } else {
            Placement::Cell(self.cell_of(position))
        };
        let index = id as usize;
        if index >= self.entries.len() {
            self.entries.resize(index + 1, None);
        }
        if let Some((old, _, _)) = self.entries[index]
            && old == placement
        {
            self.entries[index] = Some((placement, position, radius));
            return;
        }
        self.unplace(id);
        match placement {
            Placement::Cell(cell) => self.cells.entry(cell).or_default().push(id),
            Placement::Large => {
                let at = self.large.partition_point(|x| *x < id);
                self.large.insert(at, id);
            }
        }
        self.entries[index] = Some((placement, position, radius));
    }

    fn unplace(&mut self, id: ObjectId) {
        let Some(Some((placement, _, _))) = self.entries.get(id as usize).copied() else {
            return;
        };
        match placement {
            Placement::Cell(cell) => {
                if let Some(list) = self.cells.get_mut(&cell) {
                    if let Some(at) = list.iter().position(|x| *x == id) {
                        list.swap_remove(at);
                    }
                    if list.is_empty() {
                        self.cells.remove(&cell);
                    }
                }
            }
            Placement::Large => {
                if let Ok(at) = self.large.binary_search(&id) {
                    self.large.remove(at);
                }
            }
        }
    }

    /// Moves a known object to `position`, keeping its radius; ignores unknown ids.
    #[inline]
    pub fn move_to(&mut self, id: ObjectId, position: [f32; 3]) {
        let Some(Some((placement, old, radius))) = self.entries.get_mut(id as usize) else {
            return;
        };
        if let Placement::Cell(cell) = *placement {
            let f = |c: f32| (c / self.cell_size).floor() as i32;
            if (f(position[0]), f(position[1]), f(position[2])) == cell {
                *old = position;
                return;
            }
        } else {
            *old = position;
            return;
        }
        let radius = *radius;
        self.update(id, position, radius);
    }

    /// Removes `id` from the grid.
    pub fn remove(&mut self, id: ObjectId) {
        self.unplace(id);
        if let Some(slot) = self.entries.get_mut(id as usize) {
            *slot = None;
        }
    }

    /// Ids whose bounding sphere touches the sphere (`center`, `radius`), sorted.
    pub fn within(&self, center: [f32; 3], radius: f32) -> Vec<ObjectId> {
        let mut out = Vec::new();
        if !radius.is_finite() || radius < 0.0 || !center.iter().all(|c| c.is_finite()) {
            return out;
        }
        let hits = |id: ObjectId| {
            let Some((_, p, r)) = self.entries[id as usize] else {
                return false;
            };
            let d2 = (0..3).map(|i| (p[i] - center[i]).powi(2)).sum::<f32>();
            let reach = radius + r;
            d2 <= reach * reach
        };
        out.extend(self.large.iter().copied().filter(|id| hits(*id)));
        // Objects in a cell have a bounding radius <= cell size, so look one cell further.
        let lo = self.cell_of(center.map(|c| c - radius - self.cell_size));
        let hi = self.cell_of(center.map(|c| c + radius + self.cell_size));
        let span = |a: i32, b: i32| (b as i64 - a as i64 + 1).max(0) as u64;
        let box_cells = span(lo.0, hi.0)
            .saturating_mul(span(lo.1, hi.1))
            .saturating_mul(span(lo.2, hi.2));
        if box_cells > self.cells.len() as u64 {
            // A huge query: walking the occupied cells is cheaper than walking the box.
            for (cell, ids) in &self.cells {
                if (lo.0..=hi.0).contains(&cell.0)
                    && (lo.1..=hi.1).contains(&cell.1)
                    && (lo.2..=hi.2).contains(&cell.2)
                {
                    out.extend(ids.iter().copied().filter(|id| hits(*id)));
                }
            }
        } else {
            for x in lo.0..=hi.0 {
                for y in lo.1..=hi.1 {
                    for z in lo.2..=hi.2 {
                        if let Some(ids) = self.cells.get(&(x, y, z)) {
                            out.extend(ids.iter().copied().filter(|id| hits(*id)));
                        }
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_log_reports_latest_changes_only_once() {
        let mut log = ChangeLog::default();
        log.touch(1, 1);
        log.touch(2, 1);
        log.touch(1, 3);
        log.touch(3, 4);
        assert_eq!(log.changed_since(0), vec![2, 1, 3]);
        assert_eq!(log.changed_since(1), vec![1, 3]);
        assert_eq!(log.changed_since(3), vec![3]);
        assert!(log.changed_since(4).is_empty());
        log.remove(1, 5);
        assert_eq!(log.changed_since(0), vec![2, 3]);
        assert_eq!(log.removed_since(4), vec![1]);
        assert!(log.removed_since(5).is_empty());
    }

    #[test]
    fn change_log_tells_avatar_removals_apart_and_knows_what_it_forgot() {
        let mut log = ChangeLog::default();
        log.touch(1, 1);
        log.touch(2, 1);
        log.remove(1, 10);
        log.remove_avatar(2, 10);
        assert_eq!(log.removed_since(0), vec![1, 2]);
        assert_eq!(log.removed_objects_since(0), vec![1]);
        assert!(log.removals_complete_since(0));
        // A removal past the horizon expires the first two: only later queries stay complete.
        log.touch(3, 20);
        log.remove(3, 10 + REMOVAL_HORIZON + 1);
        assert_eq!(log.removed_since(0), vec![3]);
        assert_eq!(log.removed_objects_since(0), vec![3]);
        assert!(!log.removals_complete_since(9));
        assert!(log.removals_complete_since(10));
    }

    #[test]
    fn change_log_compacts_without_losing_answers() {
        let mut log = ChangeLog::default();
        for tick in 1..=2000u64 {
            log.touch((tick % 7) as u32, tick);
        }
        assert!(log.log.len() <= 2 * 7 + 1024 + 1);
        let mut since = log.changed_since(1990);
        since.sort();
        let mut expect: Vec<u32> = (1991..=2000u64).map(|t| (t % 7) as u32).collect();
        expect.sort();
        expect.dedup();
        assert_eq!(since, expect);
    }

    #[test]
    fn grid_moves_objects_between_cells_and_large_list() {
        let mut grid = InterestGrid::new(4.0);
        grid.update(1, [0.0, 0.0, 0.0], 0.5);
        grid.update(2, [10.0, 0.0, 0.0], 0.5);
        grid.update(3, [100.0, 0.0, 0.0], 500.0);
        assert_eq!(grid.within([0.0; 3], 1.0), vec![1, 3]);
        grid.update(1, [10.5, 0.0, 0.0], 0.5);
        assert_eq!(grid.within([0.0; 3], 1.0), vec![3]);
        assert_eq!(grid.within([10.0, 0.0, 0.0], 1.0), vec![1, 2, 3]);
        grid.remove(3);
        assert_eq!(grid.within([10.0, 0.0, 0.0], 1.0), vec![1, 2]);
        assert_eq!(grid.within([0.0; 3], 1.0e6), vec![1, 2]);
    }
}
