//! Consuming Kafka messages in batches through librdkafka's C API
//! (`rd_kafka_consume_batch_queue`), and the raw messages it hands out. This is the only
//! `unsafe` code of the Kafka wrapper: rust-rdkafka has no safe batch API, and consuming one
//! message at a time costs a queue lock per message.
//!
//! Ownership: [`Batch`] holds a reference to the consumer's queue (released on drop) and the
//! message pointers of the current batch; each message is wrapped in a [`RawMsg`] exactly once
//! as it is handed out, and destroyed when that is dropped. Messages not handed out are
//! destroyed when the batch is dropped. The consumer must outlive the batch (`KafkaScan`
//! declares `batch` before `consumer`, and `start()` drops the batch before it replaces the
//! consumer).
use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::{Duration, Instant};

/// Messages taken from the consumer's queue in batches (`rd_kafka_consume_batch_queue`): one
/// queue lock per batch instead of one per message, which is what keeps `count(*)` close to a
/// bare consumer.
pub(super) struct Batch {
    queue: *mut rdsys::rd_kafka_queue_t,
    msgs: Vec<*mut rdsys::rd_kafka_message_t>,
    pos: usize,
    /// When the last non-empty batch arrived (progress for the scan's timeout).
    pub(super) filled_at: Instant,
    /// The last error event seen in the queue (for the timeout message).
    pub(super) last_error: Option<String>,
    /// End-of-partition events seen (partition, offset the consumer reached), in queue order:
    /// a partition can end with offsets that carry no message (transaction markers, messages
    /// of aborted transactions), so the scan cannot wait for a message at `end - 1`.
    pub(super) eofs: Vec<(i32, i64)>,
}

const BATCH: usize = 1000;

/// One message of a batch; destroyed (returned to librdkafka) when dropped.
///
/// Invariant: the pointer is a message returned by `rd_kafka_consume_batch_queue` (or
/// `rd_kafka_consume_queue`), not yet
/// destroyed, owned by this value alone. Only [`Batch::next`] constructs one (the field is
/// private to this file).
pub(super) struct RawMsg(*mut rdsys::rd_kafka_message_t);

impl RawMsg {
    fn m(&self) -> &rdsys::rd_kafka_message_t {
        // SAFETY: by the type's invariant, a live, non-NULL message owned by `self`; the
        // reference cannot outlive `self`, which destroys the message only on drop.
        unsafe { &*self.0 }
    }
    pub(super) fn partition(&self) -> i32 {
        self.m().partition
    }
    pub(super) fn offset(&self) -> i64 {
        self.m().offset
    }
    /// `len` bytes at `p` (None if `p` is NULL).
    ///
    /// # Safety
    /// `p` is NULL or points to `len` readable bytes that stay valid and unchanged for `'a`:
    /// a payload, key or header value of a message that outlives `'a`.
    unsafe fn bytes<'a>(p: *mut std::ffi::c_void, len: usize) -> Option<&'a [u8]> {
        // SAFETY: the caller's contract: `len` readable bytes at `p` for `'a`.
        (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts(p as *const u8, len) })
    }
    pub(super) fn payload(&self) -> Option<&[u8]> {
        // SAFETY: librdkafka guarantees `len` bytes at `payload` while the message lives, and
        // the slice borrows `self`, which keeps the message alive.
        unsafe { Self::bytes(self.m().payload, self.m().len) }
    }
    pub(super) fn key(&self) -> Option<&[u8]> {
        // SAFETY: as for payload: `key_len` bytes at `key` while the message (`self`) lives.
        unsafe { Self::bytes(self.m().key, self.m().key_len) }
    }
    pub(super) fn timestamp_ms(&self) -> Option<i64> {
        let mut ty = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a live message (type invariant); `ty` is a live local librdkafka writes to.
        let ts = unsafe { rdsys::rd_kafka_message_timestamp(self.0, &mut ty) };
        (ts >= 0).then_some(ts)
    }
    pub(super) fn headers(&self) -> Vec<(&str, Option<&[u8]>)> {
        let mut out = vec![];
        let mut hdrs: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
        // SAFETY: a live message (type invariant). rd_kafka_message_headers sets `hdrs` to the
        // message's own header list (freed with the message), and rd_kafka_header_get_all
        // points `name` at a NUL-terminated string and `val` at `size` bytes inside it. The
        // returned &str and slices borrow `self`, so they cannot outlive the message.
        unsafe {
            if rdsys::rd_kafka_message_headers(self.0, &mut hdrs)
                != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                return out;
            }
            let mut i = 0;
            loop {
                let mut name: *const std::ffi::c_char = std::ptr::null();
                let mut val: *const std::ffi::c_void = std::ptr::null();
                let mut size = 0usize;
                if rdsys::rd_kafka_header_get_all(hdrs, i, &mut name, &mut val, &mut size)
                    != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                {
                    break;
                }
                let key = std::ffi::CStr::from_ptr(name).to_str().unwrap_or("");
                out.push((key, Self::bytes(val as *mut _, size)));
                i += 1;
            }
        }
        out
    }
}

impl Drop for RawMsg {
    fn drop(&mut self) {
        // SAFETY: the message is owned by this value alone (type invariant) and destroyed
        // exactly once, here.
        unsafe { rdsys::rd_kafka_message_destroy(self.0) }
    }
}

impl Batch {
    pub(super) fn new(consumer: &BaseConsumer) -> Batch {
        // SAFETY: `native_ptr` is the consumer's live rd_kafka_t handle; the queue reference
        // returned (NULL-checked in fill and drop) is released in Drop, and the consumer
        // outlives the batch (field order in KafkaScan, reset in start(); see the module doc).
        let queue = unsafe { rdsys::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        Batch {
            queue,
            msgs: Vec::with_capacity(BATCH),
            pos: 0,
            filled_at: Instant::now(),
            last_error: None,
            eofs: Vec::new(),
        }
    }

    /// The next buffered message that is not an error event (end-of-partition events are
    /// collected in `eofs`; take them after each message, as they follow it in the queue).
    pub(super) fn next(&mut self) -> Option<RawMsg> {
        while self.pos < self.msgs.len() {
            // RawMsg's invariant: `msgs` holds exactly the messages the last fill() received
            // (truncated to their count), and `pos` moves past each one as it is wrapped, so
            // every message is wrapped, and so destroyed, exactly once.
            let m = RawMsg(self.msgs[self.pos]);
            self.pos += 1;
            if m.m().err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF {
                self.eofs.push((m.partition(), m.offset()));
                continue;
            }
            if m.m().err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                // Transport trouble is retried by librdkafka; remember it for the timeout message.
                self.last_error = Some(
                    // SAFETY: rd_kafka_err2str returns a pointer to a static, NUL-terminated
                    // string for any error code.
                    unsafe { std::ffi::CStr::from_ptr(rdsys::rd_kafka_err2str(m.m().err)) }
                        .to_string_lossy()
                        .into_owned(),
                );
                continue;
            }
            return Some(m);
        }
        None
    }

    /// Waits up to `wait` for messages; returns how many arrived. What is queued is taken at
    /// once; only an empty queue is waited on, and only until its first message:
    /// `rd_kafka_consume_batch_queue` itself would wait for a *full* batch (or the whole
    /// `wait`), which a short range or a partition at its end never fills.
    pub(super) fn fill(&mut self, wait: Duration) -> usize {
        if self.queue.is_null() {
            return 0;
        }
        self.msgs.clear();
        self.msgs.resize(BATCH, std::ptr::null_mut());
        self.pos = 0;
        // SAFETY: `queue` is the live, non-NULL queue reference taken in new(); the buffer
        // holds BATCH pointers and librdkafka writes at most BATCH (the size passed). Clearing
        // `msgs` above could at worst leak messages not handed out (none: fill runs only after
        // next() returned None).
        let mut n = unsafe {
            rdsys::rd_kafka_consume_batch_queue(self.queue, 0, self.msgs.as_mut_ptr(), BATCH)
        };
        if n <= 0 {
            // SAFETY: as above; rd_kafka_consume_queue returns one message we now own (stored
            // in msgs[0], so handed out or destroyed exactly once like the others) or NULL.
            let first =
                unsafe { rdsys::rd_kafka_consume_queue(self.queue, wait.as_millis() as i32) };
            if first.is_null() {
                n = 0;
            } else {
                self.msgs[0] = first;
                // SAFETY: as above, writing at most BATCH - 1 pointers after the first.
                let more = unsafe {
                    rdsys::rd_kafka_consume_batch_queue(
                        self.queue,
                        0,
                        self.msgs.as_mut_ptr().add(1),
                        BATCH - 1,
                    )
                };
                n = 1 + more.max(0);
            }
        }
        let n = n.max(0) as usize;
        self.msgs.truncate(n);
        if n > 0 {
            self.filled_at = Instant::now();
        }
        n
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        while self.next().is_some() {}
        if !self.queue.is_null() {
            // SAFETY: the non-NULL queue reference taken in new(), released once, after the
            // loop above destroyed the messages not handed out.
            unsafe { rdsys::rd_kafka_queue_destroy(self.queue) };
        }
    }
}
