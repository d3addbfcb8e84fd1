//! Point-to-point messages of the asynchronous execution (docs/architecture.md,
//! "Asynchronous execution"): packed bytes with a tag that says what they are.
//!
//! The server receives by matched probe on any source (MPI_Mprobe, then MPI_Mrecv of
//! exactly the probed size), so it never waits for one particular worker and a message
//! is received whole into a reused buffer. Sends are blocking, yet never wait long: the
//! protocol sends only to a rank that is already waiting in its receive (a worker after
//! its update, the server in its probe loop), and at most one message is outstanding
//! per pair of ranks.

use super::{Comm, Op};
use mpi::datatype::Equivalence;
use mpi::point_to_point::{Destination, Message, Source, Status};
use mpi::topology::Communicator;

impl Comm {
    /// Sends `bytes` to `dest` with `tag`. Metered on this rank only (`point`) until
    /// [`Comm::meter_point_totals`] adds every rank's sends to the wire bytes.
    pub fn send_message(&mut self, dest: usize, tag: i32, bytes: &[u8]) {
        let start = mpi::time();
        self.world.process_at_rank(dest as i32).send_with_tag(bytes, tag);
        self.meter.seconds += mpi::time() - start;
        self.meter.point.add(bytes.len() as u64);
    }

    /// This rank's point-to-point sends since the meter was last taken.
    pub fn point_meter(&self) -> Op {
        self.meter.point
    }

    /// Every rank's point-to-point sends (summed by the caller, e.g. in a round's
    /// agreement): into the wire bytes, with an 8-byte envelope per message, so that
    /// `wire_bytes` counts all ranks as it does for the collectives.
    pub fn meter_point_totals(&mut self, calls: u64, bytes: u64) {
        self.meter.point = Op { calls, bytes };
        self.meter.wire_bytes += bytes + 8 * calls;
    }

    /// Waits for the next message from any rank; returns (source, tag) and the bytes in
    /// `buf` (resized). Metered as received bytes.
    pub fn receive_any(&mut self, buf: &mut Vec<u8>) -> (usize, i32) {
        let start = mpi::time();
        let (message, status) = self.world.any_process().matched_probe();
        let from = self.receive_matched(message, &status, buf);
        self.meter.seconds += mpi::time() - start;
        from
    }

    /// Waits for the next message from `source`; returns its tag, the bytes in `buf`.
    pub fn receive_from(&mut self, source: usize, buf: &mut Vec<u8>) -> i32 {
        let start = mpi::time();
        let (message, status) = self.world.process_at_rank(source as i32).matched_probe();
        let (_, tag) = self.receive_matched(message, &status, buf);
        self.meter.seconds += mpi::time() - start;
        tag
    }

    fn receive_matched(&mut self, message: Message, status: &Status, buf: &mut Vec<u8>) -> (usize, i32) {
        let len = status.count(u8::equivalent_datatype()) as usize;
        buf.resize(len, 0);
        message.matched_receive_into(&mut buf[..]);
        self.meter.received_bytes += len as u64;
        (status.source_rank() as usize, status.tag())
    }
}
