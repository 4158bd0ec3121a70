//! A task-local storage map (`BPF_MAP_TYPE_TASK_STORAGE`): one value hung off each task, found
//! from the task itself rather than by hashing its id. aya-ebpf 0.2 has no wrapper for this
//! map type, so this is one, in the shape of its `InodeStorage`: a BTF map definition the
//! loader reads (type, key, value, max_entries, flags), never dereferenced here.

use core::ptr;

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_LOCAL_STORAGE_GET_F_CREATE, bpf_map_type},
    helpers::generated::{bpf_get_current_task_btf, bpf_task_storage_get},
};

#[repr(C)]
pub struct TaskStorage<T> {
    r#type: *const [i32; bpf_map_type::BPF_MAP_TYPE_TASK_STORAGE as usize],
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; BPF_F_NO_PREALLOC as usize],
}

// SAFETY: placeholder pointers the loader replaces; never dereferenced from Rust.
unsafe impl<T> Sync for TaskStorage<T> {}

impl<T> TaskStorage<T> {
    pub const fn new() -> Self {
        TaskStorage {
            r#type: ptr::null(),
            key: ptr::null(),
            value: ptr::null(),
            max_entries: ptr::null(),
            map_flags: ptr::null(),
        }
    }

    /// The current task's value, if it has one.
    #[inline(always)]
    pub fn current(&self) -> Option<&'static mut T> {
        self.lookup(ptr::null_mut(), 0)
    }

    /// The current task's value, created zeroed if it has none. `None` when the kernel cannot
    /// allocate it or the storage is busy (a program interrupted another one using it).
    #[inline(always)]
    pub fn current_or_create(&self) -> Option<&'static mut T> {
        self.lookup(ptr::null_mut(), BPF_LOCAL_STORAGE_GET_F_CREATE as u64)
    }

    #[inline(always)]
    fn lookup(&self, initial: *mut T, flags: u64) -> Option<&'static mut T> {
        let map = ptr::from_ref(self).cast_mut().cast();
        // SAFETY: the helper returns null or a pointer to this task's value, which the kernel
        // keeps alive for at least the rest of the program run.
        unsafe {
            let task = bpf_get_current_task_btf();
            bpf_task_storage_get(map, task.cast(), initial.cast(), flags)
                .cast::<T>()
                .as_mut()
        }
    }
}
