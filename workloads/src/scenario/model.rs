//! A model of what the kernel does to the region's page tables, step by step: which fault
//! each access takes, and which frame every task maps afterwards.
//!
//! Rules (Linux 6.x `mm/memory.c`, `mm/memory.c:copy_page_range`; each confirmed on 6.18
//! by the workloads' pagemap checks and by traces):
//!
//! - A write to a page with no page table entry allocates: in anonymous memory a zeroed
//!   page (`anon_first_touch`), in a private file mapping a copy of the page-cache page
//!   (`file_private_copy`, `do_cow_fault`). Either gives the VMA an `anon_vma`.
//! - A read of an anonymous page with no entry maps the shared zero page (`zero_page`) and
//!   gives the VMA no `anon_vma`. `MADV_POPULATE_READ` of a file page maps its page-cache
//!   page read-only.
//! - A write to a present, write-protected page: a private anonymous page that no one else
//!   maps is made writable in place (`cow_reuse`); one that others map, the zero page, or
//!   a page-cache page is copied to a new anonymous page (`cow_copy`, `wp_page_copy`:
//!   page-cache pages are never reused by a private write).
//! - Reads and writes of present pages that allow them take no fault at all.
//! - Fork copies a VMA's page table entries only when the VMA has an `anon_vma`
//!   (`vma_needs_copy`); otherwise the child starts with none and faults them in. Copied
//!   private anonymous pages are write-protected in both processes; every copied entry
//!   adds a mapper to its frame.
//! - vfork children and threads share their creator's page tables. Exit and exec drop a
//!   process's page tables (its frames lose a mapper) unless another task still uses them.

use std::collections::BTreeMap;

use super::{Backing, Scenario, Step, TaskId, VforkEnd};
use crate::report::{Role, fault_kind};

/// Index of a frame of the model.
pub(crate) type FrameId = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    Anonymous,
    PageCache,
    Zero,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: FrameKind,
    /// Page table entries mapping it.
    mappers: u32,
}

#[derive(Debug, Clone, Copy)]
struct Pte {
    frame: FrameId,
    writable: bool,
}

/// One address space's view of the region.
#[derive(Debug, Clone)]
struct Mm {
    ptes: Vec<Option<Pte>>,
    /// Per segment: the VMA has an `anon_vma`.
    anon_vma: Vec<bool>,
    /// Tasks using it.
    users: u32,
}

#[derive(Debug, Clone, Copy, Default)]
struct TaskState {
    created: bool,
    alive: bool,
    /// The address space the task runs in, while it maps the region.
    mm: Option<usize>,
    /// Exec'd: alive, in a new address space without the region.
    execed: bool,
}

/// Faults one task takes inside the region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FaultCounts {
    pub(crate) anon_first_touch: u64,
    pub(crate) zero_page: u64,
    pub(crate) cow_copy: u64,
    pub(crate) cow_reuse: u64,
    pub(crate) file_private_copy: u64,
    /// Pages mapped by `MADV_POPULATE_READ` (not faults the workloads count).
    pub(crate) populated: u64,
}

impl FaultCounts {
    /// The report's `expected` map: the anonymous kinds always; with file segments also
    /// `file_private_copy` and the file read kinds, which no step takes (populating goes
    /// through get_user_pages, not a user fault).
    pub(crate) fn to_map(self, file_kinds: bool) -> BTreeMap<String, u64> {
        let mut kinds = vec![
            (fault_kind::ANON_FIRST_TOUCH, self.anon_first_touch),
            (fault_kind::ZERO_PAGE, self.zero_page),
            (fault_kind::COW_COPY, self.cow_copy),
            (fault_kind::COW_REUSE, self.cow_reuse),
        ];
        if file_kinds {
            kinds.extend([
                (fault_kind::FILE_PRIVATE_COPY, self.file_private_copy),
                (fault_kind::FILE_MINOR, 0),
                (fault_kind::FILE_MAJOR, 0),
            ]);
        }
        kinds
            .into_iter()
            .map(|(kind, count)| (kind.to_string(), count))
            .collect()
    }

    fn add(&mut self, kind: Fault) {
        match kind {
            Fault::AnonFirstTouch => self.anon_first_touch += 1,
            Fault::ZeroPage => self.zero_page += 1,
            Fault::CowCopy => self.cow_copy += 1,
            Fault::CowReuse => self.cow_reuse += 1,
            Fault::FilePrivateCopy => self.file_private_copy += 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    AnonFirstTouch,
    ZeroPage,
    CowCopy,
    CowReuse,
    FilePrivateCopy,
}

/// What one task maps at one page: the frame, and whether it is a page-cache page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PredictedPage {
    pub(crate) frame: FrameId,
    pub(crate) page_cache: bool,
    /// Mapped by this page table only (pagemap's "exclusively mapped" bit).
    pub(crate) exclusive: bool,
}

/// A task's view of the region: `None` where no page is mapped.
pub(crate) type View = Vec<Option<PredictedPage>>;

/// The model's state while it replays a scenario.
#[derive(Debug, Clone)]
pub(crate) struct Model<'a> {
    scenario: &'a Scenario,
    frames: Vec<Frame>,
    zero_frame: FrameId,
    /// Page-cache frame of each region page of a file segment, once mapped.
    page_cache: Vec<Option<FrameId>>,
    mms: Vec<Mm>,
    tasks: Vec<TaskState>,
    /// Who created each task (fork or vfork); `None` for the root and for threads.
    parents: Vec<Option<TaskId>>,
    counts: Vec<FaultCounts>,
    snapshots: Vec<Snapshot>,
    steps_applied: usize,
}

/// A [`Step::Snapshot`]'s view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) task: TaskId,
    pub(crate) label: &'static str,
    pub(crate) view: View,
}

/// Everything the model predicts for a whole scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Per task.
    pub(crate) counts: Vec<FaultCounts>,
    /// Per task: its view at the checkpoint, if it is alive and maps the region.
    pub(crate) views: Vec<Option<View>>,
    /// Per task: alive at the checkpoint.
    pub(crate) alive: Vec<bool>,
    /// Per task: exec'd (alive without the region).
    pub(crate) execed: Vec<bool>,
    pub(crate) parents: Vec<Option<TaskId>>,
    pub(crate) snapshots: Vec<Snapshot>,
}

impl Outcome {
    /// Region pages the task maps exclusively at the checkpoint.
    pub(crate) fn exclusive_pages(&self, task: TaskId) -> Option<u64> {
        self.views[task].as_ref().map(|view| {
            view.iter()
                .filter(|page| page.is_some_and(|page| page.exclusive))
                .count() as u64
        })
    }
}

impl<'a> Model<'a> {
    pub(crate) fn new(scenario: &'a Scenario) -> Model<'a> {
        let pages = scenario.region_pages();
        let mut tasks = vec![TaskState::default(); scenario.tasks.len()];
        let root_mm = Mm {
            ptes: vec![None; pages],
            anon_vma: vec![false; scenario.segments.len()],
            users: 1,
        };
        if let Some(root) = tasks.first_mut() {
            *root = TaskState {
                created: true,
                alive: true,
                mm: Some(0),
                execed: false,
            };
        }
        Model {
            scenario,
            frames: vec![Frame {
                kind: FrameKind::Zero,
                mappers: 0,
            }],
            zero_frame: 0,
            page_cache: vec![None; pages],
            mms: vec![root_mm],
            tasks,
            parents: vec![None; scenario.tasks.len()],
            counts: vec![FaultCounts::default(); scenario.tasks.len()],
            snapshots: Vec::new(),
            steps_applied: 0,
        }
    }

    /// Replays every step and returns the prediction, or why the scenario is invalid.
    pub(crate) fn outcome(scenario: &'a Scenario) -> Result<Outcome, String> {
        let mut model = Model::new(scenario);
        model.validate_tasks()?;
        for step in &scenario.steps {
            model.apply(step)?;
        }
        Ok(model.finish())
    }

    fn validate_tasks(&self) -> Result<(), String> {
        let tasks = &self.scenario.tasks;
        if tasks.first().map(|task| task.role) != Some(Role::Parent) {
            return Err("the first task must be the parent (the caller)".into());
        }
        for (i, task) in tasks.iter().enumerate() {
            if tasks[..i].iter().any(|other| other.name == task.name) {
                return Err(format!("two tasks are called {:?}", task.name));
            }
        }
        Ok(())
    }

    /// The prediction at this point (checkpoint = now).
    pub(crate) fn finish(&self) -> Outcome {
        Outcome {
            counts: self.counts.clone(),
            views: (0..self.tasks.len()).map(|task| self.view(task)).collect(),
            alive: self.tasks.iter().map(|task| task.alive).collect(),
            execed: self.tasks.iter().map(|task| task.execed).collect(),
            parents: self.parents.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    /// The task's current view, if it is alive and maps the region.
    pub(crate) fn view(&self, task: TaskId) -> Option<View> {
        let state = self.tasks.get(task)?;
        let mm = &self.mms[state.mm.filter(|_| state.alive)?];
        Some(
            mm.ptes
                .iter()
                .map(|pte| {
                    pte.map(|pte| {
                        let frame = self.frames[pte.frame];
                        PredictedPage {
                            frame: pte.frame,
                            page_cache: frame.kind == FrameKind::PageCache,
                            exclusive: frame.kind != FrameKind::Zero && frame.mappers == 1,
                        }
                    })
                })
                .collect(),
        )
    }

    fn name(&self, task: TaskId) -> &'static str {
        self.scenario.tasks.get(task).map_or("?", |spec| spec.name)
    }

    fn role(&self, task: TaskId) -> Option<Role> {
        self.scenario.tasks.get(task).map(|spec| spec.role)
    }

    fn require_alive(&self, task: TaskId) -> Result<(), String> {
        match self.tasks.get(task) {
            None => Err(format!("no task {task}")),
            Some(state) if !state.created => {
                Err(format!("{} acts before it is created", self.name(task)))
            }
            Some(state) if !state.alive => Err(format!("{} acts after exiting", self.name(task))),
            Some(_) => Ok(()),
        }
    }

    fn require_new(&self, task: TaskId, role: &[Role]) -> Result<(), String> {
        match self.tasks.get(task) {
            None => Err(format!("no task {task}")),
            Some(state) if state.created => Err(format!("{} is created twice", self.name(task))),
            Some(_) if !role.contains(&self.role(task).unwrap()) => Err(format!(
                "{} has role {:?}, not one of {role:?}",
                self.name(task),
                self.role(task).unwrap()
            )),
            Some(_) => Ok(()),
        }
    }

    fn mm_of(&self, task: TaskId) -> Result<usize, String> {
        self.require_alive(task)?;
        self.tasks[task]
            .mm
            .ok_or_else(|| format!("{} no longer maps the region", self.name(task)))
    }

    fn new_frame(&mut self, kind: FrameKind) -> FrameId {
        self.frames.push(Frame { kind, mappers: 1 });
        self.frames.len() - 1
    }

    fn unmap(&mut self, frame: FrameId) {
        let frame = &mut self.frames[frame];
        frame.mappers = frame.mappers.saturating_sub(1);
    }

    /// Applies one step.
    pub(crate) fn apply(&mut self, step: &Step) -> Result<(), String> {
        let region_pages = self.scenario.region_pages();
        match *step {
            Step::Write { task, pages } => {
                pages.validate(region_pages)?;
                let mm = self.mm_of(task)?;
                for page in pages.iter() {
                    if let Some(fault) = self.write(mm, page) {
                        self.counts[task].add(fault);
                    }
                }
            }
            Step::Read { task, pages } => {
                pages.validate(region_pages)?;
                let mm = self.mm_of(task)?;
                for page in pages.iter() {
                    if let Some(fault) = self.read(mm, page)? {
                        self.counts[task].add(fault);
                    }
                }
            }
            Step::PopulateRead { task, pages } => {
                pages.validate(region_pages)?;
                let mm = self.mm_of(task)?;
                for page in pages.iter() {
                    if self.populate_read(mm, page)? {
                        self.counts[task].populated += 1;
                    }
                }
            }
            Step::Fork { task, child } => {
                let mm = self.mm_of(task)?;
                if self.role(task) == Some(Role::Thread) {
                    return Err("threads do not fork in these workloads".into());
                }
                let expected_role = if task == super::ROOT {
                    Role::Child
                } else {
                    Role::Grandchild
                };
                self.require_new(child, &[expected_role])?;
                let child_mm = self.fork_mm(mm);
                self.mms.push(child_mm);
                self.tasks[child] = TaskState {
                    created: true,
                    alive: true,
                    mm: Some(self.mms.len() - 1),
                    execed: false,
                };
                self.parents[child] = Some(task);
            }
            Step::Vfork {
                child,
                writes,
                then,
            } => {
                let mm = self.mm_of(super::ROOT)?;
                self.require_new(child, &[Role::VforkChild])?;
                self.parents[child] = Some(super::ROOT);
                // The child runs in the root's memory; its faults are its own.
                if let Some(pages) = writes {
                    pages.validate(region_pages)?;
                    for page in pages.iter() {
                        if let Some(fault) = self.write(mm, page) {
                            self.counts[child].add(fault);
                        }
                    }
                }
                // Exit or exec leaves the memory to the root: nothing is unmapped.
                self.tasks[child] = TaskState {
                    created: true,
                    alive: false,
                    mm: None,
                    execed: then == VforkEnd::Exec,
                };
            }
            Step::SpawnThread { thread } => {
                let mm = self.mm_of(super::ROOT)?;
                self.require_new(thread, &[Role::Thread])?;
                self.mms[mm].users += 1;
                self.tasks[thread] = TaskState {
                    created: true,
                    alive: true,
                    mm: Some(mm),
                    execed: false,
                };
            }
            Step::Exit { task } => {
                self.mm_of(task)?;
                if self.parents[task] != Some(super::ROOT) || self.role(task) != Some(Role::Child) {
                    return Err(format!(
                        "{} cannot exit early: only forked children of the parent do",
                        self.name(task)
                    ));
                }
                if (0..self.tasks.len())
                    .any(|other| self.parents[other] == Some(task) && self.tasks[other].alive)
                {
                    return Err(format!("{} exits before its children", self.name(task)));
                }
                self.drop_mm(task);
                self.tasks[task].alive = false;
            }
            Step::Exec { task } => {
                self.mm_of(task)?;
                if !matches!(self.role(task), Some(Role::Child | Role::Grandchild)) {
                    return Err(format!("{} cannot exec here", self.name(task)));
                }
                self.drop_mm(task);
                self.tasks[task].execed = true;
            }
            Step::Snapshot { task, label } => {
                let view = self
                    .view(task)
                    .ok_or_else(|| format!("{} has no region to snapshot", self.name(task)))?;
                self.snapshots.push(Snapshot { task, label, view });
            }
        }
        self.steps_applied += 1;
        Ok(())
    }

    /// Detaches the task from its address space, dropping it if it was the last user.
    fn drop_mm(&mut self, task: TaskId) {
        let Some(mm) = self.tasks[task].mm.take() else {
            return;
        };
        self.mms[mm].users -= 1;
        if self.mms[mm].users == 0 {
            let frames: Vec<FrameId> = self.mms[mm]
                .ptes
                .iter_mut()
                .filter_map(|pte| pte.take().map(|pte| pte.frame))
                .collect();
            for frame in frames {
                self.unmap(frame);
            }
        }
    }

    fn backing(&self, page: usize) -> (usize, Backing) {
        let segment = self.scenario.segment_of(page).expect("validated page");
        (segment, self.scenario.segments[segment].backing)
    }

    fn write(&mut self, mm: usize, page: usize) -> Option<Fault> {
        let (segment, backing) = self.backing(page);
        let fault = match self.mms[mm].ptes[page] {
            Some(Pte { writable: true, .. }) => return None,
            None => {
                let frame = self.new_frame(FrameKind::Anonymous);
                self.mms[mm].ptes[page] = Some(Pte {
                    frame,
                    writable: true,
                });
                match backing {
                    Backing::Anonymous => Fault::AnonFirstTouch,
                    Backing::FilePrivate => Fault::FilePrivateCopy,
                }
            }
            Some(Pte { frame, .. }) => {
                let old = self.frames[frame];
                if old.kind == FrameKind::Anonymous && old.mappers == 1 {
                    self.mms[mm].ptes[page] = Some(Pte {
                        frame,
                        writable: true,
                    });
                    Fault::CowReuse
                } else {
                    self.unmap(frame);
                    let copy = self.new_frame(FrameKind::Anonymous);
                    self.mms[mm].ptes[page] = Some(Pte {
                        frame: copy,
                        writable: true,
                    });
                    Fault::CowCopy
                }
            }
        };
        // Every allocation above prepared the VMA's anon_vma; a reuse found one there.
        self.mms[mm].anon_vma[segment] = true;
        Some(fault)
    }

    fn read(&mut self, mm: usize, page: usize) -> Result<Option<Fault>, String> {
        if self.mms[mm].ptes[page].is_some() {
            return Ok(None);
        }
        match self.backing(page).1 {
            Backing::Anonymous => {
                self.frames[self.zero_frame].mappers += 1;
                self.mms[mm].ptes[page] = Some(Pte {
                    frame: self.zero_frame,
                    writable: false,
                });
                Ok(Some(Fault::ZeroPage))
            }
            Backing::FilePrivate => Err(format!(
                "a read of unmapped file page {page} faults around neighbouring pages, \
                 which the model does not follow; populate them first"
            )),
        }
    }

    /// Maps the page-cache page read-only if nothing is mapped; true if it did.
    fn populate_read(&mut self, mm: usize, page: usize) -> Result<bool, String> {
        if self.backing(page).1 != Backing::FilePrivate {
            return Err(format!("page {page} is not in a file segment"));
        }
        if self.mms[mm].ptes[page].is_some() {
            return Ok(false);
        }
        let frame = match self.page_cache[page] {
            Some(frame) => {
                self.frames[frame].mappers += 1;
                frame
            }
            None => {
                let frame = self.new_frame(FrameKind::PageCache);
                self.page_cache[page] = Some(frame);
                frame
            }
        };
        self.mms[mm].ptes[page] = Some(Pte {
            frame,
            writable: false,
        });
        Ok(true)
    }

    /// The child's address space after a fork of `parent`'s.
    fn fork_mm(&mut self, parent: usize) -> Mm {
        let mut child = Mm {
            ptes: vec![None; self.mms[parent].ptes.len()],
            anon_vma: self.mms[parent].anon_vma.clone(),
            users: 1,
        };
        for page in 0..child.ptes.len() {
            let (segment, _) = self.backing(page);
            if !self.mms[parent].anon_vma[segment] {
                // vma_needs_copy: no anon_vma, no copy; the child faults pages in itself.
                continue;
            }
            let Some(pte) = self.mms[parent].ptes[page] else {
                continue;
            };
            self.frames[pte.frame].mappers += 1;
            // Private pages become write-protected in both (page-cache and zero-page
            // entries of a private mapping are read-only already).
            let protected = Pte {
                frame: pte.frame,
                writable: false,
            };
            self.mms[parent].ptes[page] = Some(protected);
            child.ptes[page] = Some(protected);
        }
        child
    }
}

/// Names of the relations of [`sharing`].
pub(crate) const WITH_PARENT: &str = "with_parent";
pub(crate) const WITH_CHILDREN: &str = "with_children";
pub(crate) const WITH_SIBLINGS: &str = "with_siblings";

/// For each task, how many region pages it maps with the same frame as its parent, as at
/// least one of its children, as at least one of its siblings: keys present only for
/// relatives that have a view. Threads and tasks without a view get `None`, as do tasks
/// with no relative that has one. Works on any frame identity: model frames or PFNs.
pub(crate) fn sharing<F: Copy + PartialEq>(
    views: &[Option<Vec<Option<F>>>],
    parents: &[Option<TaskId>],
    roles: &[Role],
) -> Vec<Option<BTreeMap<String, u64>>> {
    let is_process = |task: TaskId| roles[task] != Role::Thread;
    let shares = |task: TaskId, others: &[TaskId]| -> u64 {
        let own = views[task].as_ref().expect("task has a view");
        (0..own.len())
            .filter(|&page| {
                own[page].is_some_and(|frame| {
                    others.iter().any(|&other| {
                        views[other]
                            .as_ref()
                            .is_some_and(|view| view[page] == Some(frame))
                    })
                })
            })
            .count() as u64
    };
    (0..views.len())
        .map(|task| {
            if views[task].is_none() || !is_process(task) {
                return None;
            }
            let with_view = |other: &TaskId| views[*other].is_some() && is_process(*other);
            let parent: Vec<TaskId> = parents[task].into_iter().filter(with_view).collect();
            let children: Vec<TaskId> = (0..views.len())
                .filter(|&other| parents[other] == Some(task))
                .filter(with_view)
                .collect();
            let siblings: Vec<TaskId> = (0..views.len())
                .filter(|&other| {
                    other != task && parents[task].is_some() && parents[other] == parents[task]
                })
                .filter(with_view)
                .collect();
            let map: BTreeMap<String, u64> = [
                (WITH_PARENT, parent),
                (WITH_CHILDREN, children),
                (WITH_SIBLINGS, siblings),
            ]
            .into_iter()
            .filter(|(_, others)| !others.is_empty())
            .map(|(key, others)| (key.to_string(), shares(task, &others)))
            .collect();
            (!map.is_empty()).then_some(map)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{PageSet, ROOT, Segment, TaskSpec};
    use super::*;

    fn anon(pages: usize) -> Vec<Segment> {
        vec![Segment {
            label: "anon",
            pages,
            backing: Backing::Anonymous,
        }]
    }

    fn tasks(specs: &[(&'static str, Role)]) -> Vec<TaskSpec> {
        specs
            .iter()
            .map(|&(name, role)| TaskSpec { name, role })
            .collect()
    }

    /// fork-cow's plan, counted by the model: the same numbers as its hand arithmetic.
    #[test]
    fn reproduces_fork_cow() {
        let scenario = Scenario {
            name: "fork-cow",
            segments: anon(1009),
            tasks: tasks(&[("parent", Role::Parent), ("child", Role::Child)]),
            steps: vec![
                Step::Write {
                    task: ROOT,
                    pages: PageSet::range(0..1009),
                },
                Step::Fork {
                    task: ROOT,
                    child: 1,
                },
                Step::Write {
                    task: 1,
                    pages: PageSet::range(0..503),
                },
                Step::Write {
                    task: ROOT,
                    pages: PageSet::range(246..754),
                },
            ],
        };
        let outcome = Model::outcome(&scenario).unwrap();
        let [parent, child] = [outcome.counts[0], outcome.counts[1]];
        assert_eq!(
            (parent.anon_first_touch, parent.cow_copy, parent.cow_reuse),
            (1009, 251, 257)
        );
        assert_eq!((child.cow_copy, child.cow_reuse), (503, 0));
        let sharing = sharing(
            &outcome
                .views
                .iter()
                .map(|view| {
                    view.as_ref()
                        .map(|v| v.iter().map(|p| p.map(|p| p.frame)).collect())
                })
                .collect::<Vec<Option<Vec<Option<FrameId>>>>>(),
            &outcome.parents,
            &[Role::Parent, Role::Child],
        );
        assert_eq!(sharing[0].as_ref().unwrap()[WITH_CHILDREN], 255);
        assert_eq!(sharing[1].as_ref().unwrap()[WITH_PARENT], 255);
        assert_eq!(outcome.exclusive_pages(0), Some(754));
        assert_eq!(outcome.exclusive_pages(1), Some(754));
    }

    #[test]
    fn reads_of_untouched_memory_map_the_zero_page_and_fork_does_not_copy_them() {
        let scenario = Scenario {
            name: "zero",
            segments: anon(4),
            tasks: tasks(&[("parent", Role::Parent), ("child", Role::Child)]),
            steps: vec![
                Step::Read {
                    task: ROOT,
                    pages: PageSet::range(0..4),
                },
                // No anon_vma yet: the child gets no entries and faults the zero page again.
                Step::Fork {
                    task: ROOT,
                    child: 1,
                },
                Step::Read {
                    task: 1,
                    pages: PageSet::range(0..2),
                },
                Step::Write {
                    task: ROOT,
                    pages: PageSet::range(0..1),
                },
            ],
        };
        let outcome = Model::outcome(&scenario).unwrap();
        assert_eq!(outcome.counts[0].zero_page, 4);
        // Writing over the zero page copies it.
        assert_eq!(outcome.counts[0].cow_copy, 1);
        assert_eq!(outcome.counts[1].zero_page, 2);
        assert_eq!(outcome.exclusive_pages(0), Some(1));
    }

    #[test]
    fn invalid_scenarios_are_refused() {
        let base = Scenario {
            name: "bad",
            segments: anon(4),
            tasks: tasks(&[("parent", Role::Parent), ("child", Role::Child)]),
            steps: vec![],
        };
        let with_steps = |steps: Vec<Step>| Scenario {
            steps,
            ..base.clone()
        };
        // Acting before being forked.
        let early = with_steps(vec![Step::Write {
            task: 1,
            pages: PageSet::range(0..1),
        }]);
        assert!(
            Model::outcome(&early)
                .unwrap_err()
                .contains("before it is created")
        );
        // Writing outside the region.
        let outside = with_steps(vec![Step::Write {
            task: ROOT,
            pages: PageSet::range(0..5),
        }]);
        assert!(Model::outcome(&outside).unwrap_err().contains("outside"));
        // Acting after exit.
        let late = with_steps(vec![
            Step::Fork {
                task: ROOT,
                child: 1,
            },
            Step::Exit { task: 1 },
            Step::Write {
                task: 1,
                pages: PageSet::range(0..1),
            },
        ]);
        assert!(Model::outcome(&late).unwrap_err().contains("after exiting"));
        // The parent cannot exit early.
        let root_exit = with_steps(vec![Step::Exit { task: ROOT }]);
        assert!(Model::outcome(&root_exit).is_err());
        // Duplicate names.
        let twins = Scenario {
            tasks: tasks(&[("parent", Role::Parent), ("parent", Role::Child)]),
            ..base.clone()
        };
        assert!(Model::outcome(&twins).unwrap_err().contains("two tasks"));
    }

    #[test]
    fn file_reads_without_populate_are_not_modelled() {
        let scenario = Scenario {
            name: "file",
            segments: vec![Segment {
                label: "file",
                pages: 2,
                backing: Backing::FilePrivate,
            }],
            tasks: tasks(&[("parent", Role::Parent)]),
            steps: vec![Step::Read {
                task: ROOT,
                pages: PageSet::range(0..1),
            }],
        };
        assert!(
            Model::outcome(&scenario)
                .unwrap_err()
                .contains("faults around")
        );
    }
}
