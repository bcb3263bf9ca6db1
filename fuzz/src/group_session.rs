//! The `group_session` target: three member devices of one group (SPEC.md §11) driven by
//! up to 64 operations ([`GroupOp`], decoded with `arbitrary`).
//!
//! Each member has its [`Group`] (the other two as members, its own sending chain) and a
//! [`MemberChains`] for each other member; they start with every distribution exchanged.
//! Operations: a member encrypts (padded or not); a message of the pool is delivered to a
//! member (as from its sender, or with a third member's chains as if the transport lied
//! about the sender); messages are duplicated, reordered, and altered (a byte changed, or
//! cut short); a member sends its current distribution to another, or an old distribution
//! is sent again; a member removes another (and rotates), adds one back (starting over
//! with fresh chains for it), or rotates; a member's group and chains are stored and
//! loaded (through `to_bytes` / `from_bytes`, or sealed with its own context).
//!
//! Every delivery is checked against the reference receiver ([`expect_decrypt`],
//! [`expect_distribution`]) and, on top of it, against the invariants themselves: a
//! message a member made, delivered unaltered to a member that lists its sender and holds
//! its chain from an earlier iteration, decrypts to its plaintext exactly once (a second
//! time it is `DuplicateOrExpired`); an altered message is refused and changes nothing;
//! the messages and distributions of a member the receiver removed are `NotGroupMember`;
//! the third member's chains never decrypt another's message; a distribution of a held
//! chain never moves it back (an older one is `Known`, a newer one `Advanced` with the
//! skipped keys kept, so the messages between still decrypt). Sending: a message has the padded length of its sender's policy, its
//! chain id and iteration, and the commitment of SPEC.md §11.1; membership changes do as
//! documented and change nothing when refused. After every operation each affected
//! member's group agrees with the model (members, chain id, iteration, padding), and a
//! refused call left the encodings byte-identical.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::group_fixture::*;
use crate::prelude::*;
use doubleratchet::{DistributionOutcome, Group, GroupId, MemberChains};

/// The most operations one input runs.
const MAX_GROUP_OPS: usize = 64;
/// The most reloads one input makes (later ones do nothing).
const MAX_RELOADS: usize = 8;
/// The context member `i`'s objects are sealed with.
const CONTEXTS: [&[u8]; 3] = [b"fuzz: group 0", b"fuzz: group 1", b"fuzz: group 2"];

/// One operation. Members are picked modulo 3; a receiver among the other two members
/// (`to` modulo 2); messages and distributions modulo the pool's length.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOp {
    /// Member `from` encrypts a `len`-byte plaintext, unpadded if `unpadded` (the policy
    /// stays until changed).
    Encrypt {
        /// The sender.
        from: u8,
        /// Plaintext length.
        len: u8,
        /// `Padding::None` rather than Padmé.
        unpadded: bool,
    },
    /// Pool message `msg` is delivered to one of the other members, as from its sender
    /// (with the third member's chains, if `spoof`).
    Deliver {
        /// Index into the pool.
        msg: u8,
        /// Which of the other two members.
        to: u8,
        /// The receiver uses the third member's chains.
        spoof: bool,
    },
    /// Pool message `msg` is copied to the end of the pool.
    Duplicate {
        /// Index into the pool.
        msg: u8,
    },
    /// Pool messages `a` and `b` swap places.
    Reorder {
        /// Index into the pool.
        a: u8,
        /// Index into the pool.
        b: u8,
    },
    /// A copy of pool message `msg` with byte `at` XORed with `xor` (cut at `at` when
    /// `xor` is 0) is added to the pool.
    Tamper {
        /// Index into the pool.
        msg: u8,
        /// Byte position (modulo the length).
        at: u16,
        /// The change; 0 cuts.
        xor: u8,
    },
    /// Member `from` sends its current distribution to another member (only if it lists
    /// it: the app sends to members).
    Distribute {
        /// The sender.
        from: u8,
        /// Which of the other two members.
        to: u8,
    },
    /// Distribution `dist` (every one made so far) is sent again to one of the other
    /// members.
    Resend {
        /// Index into the distributions made.
        dist: u8,
        /// Which of the other two members.
        to: u8,
    },
    /// Member `by` removes one of the other two members and rotates.
    Remove {
        /// The member whose group changes.
        by: u8,
        /// Which of the other two members.
        who: u8,
    },
    /// Member `by` adds one of the other two members (and starts over with fresh chains
    /// for it).
    Add {
        /// The member whose group changes.
        by: u8,
        /// Which of the other two members.
        who: u8,
    },
    /// Member `by` starts a new sending chain.
    Rotate {
        /// The member whose group changes.
        by: u8,
    },
    /// Member `who`'s group and chains are stored and loaded (sealed, if `sealed`).
    Reload {
        /// The member.
        who: u8,
        /// Through `StorageKey::seal` / `open`.
        sealed: bool,
    },
}

/// The number of [`GroupOp`] variants (for the seeds' encoder).
pub(crate) const GROUP_OP_VARIANTS: u64 = 11;

/// Decodes the target's operations from the input.
pub fn group_ops_from_bytes(data: &[u8]) -> Vec<GroupOp> {
    decode_ops(data, MAX_GROUP_OPS)
}

/// The start of every input: three members with every distribution exchanged, stored.
struct Start {
    id: GroupId,
    keys: [IdentityKey; 3],
    groups: [Vec<u8>; 3],
    /// `chains[r][s]`: member `r`'s chains of member `s` (none for itself).
    chains: [[Option<Vec<u8>>; 3]; 3],
    registry: Registry,
    /// Each member's first distribution.
    distributions: Vec<(usize, Vec<u8>)>,
}

fn start() -> &'static Start {
    static START: OnceLock<Start> = OnceLock::new();
    START.get_or_init(|| {
        let mut r = rng(0x6_5e55);
        let keys: [IdentityKey; 3] =
            core::array::from_fn(|_| *IdentityKeyPair::generate(&mut r).unwrap().public_key());
        let id = GroupId::from_bytes([0x53; 32]);
        let mut registry = Registry::default();
        let groups: Vec<Group> = (0..3)
            .map(|i| {
                let others: Vec<IdentityKey> = others(i).iter().map(|&o| keys[o]).collect();
                let g = Group::new(id, &keys[i], &others, &mut r).unwrap();
                registry.chain_of(&g);
                g
            })
            .collect();
        let mut distributions = Vec::new();
        let mut chains: [[Option<Vec<u8>>; 3]; 3] = Default::default();
        for (s, g) in groups.iter().enumerate() {
            let d = g.distribution().to_bytes().to_vec();
            registry.distribution(&keys[s], &d);
            for rcv in others(s) {
                let mut c = MemberChains::new(&id, &keys[s]);
                assert_eq!(
                    distribution_checked(&groups[rcv], &keys[s], &mut c, &d, &registry),
                    Ok(DistributionOutcome::Added { evicted: None })
                );
                chains[rcv][s] = Some(c.to_bytes().to_vec());
            }
            distributions.push((s, d));
        }
        Start {
            id,
            keys,
            groups: core::array::from_fn(|i| groups[i].to_bytes().to_vec()),
            chains,
            registry,
            distributions,
        }
    })
}

/// The other two members of `i`.
fn others(i: usize) -> [usize; 2] {
    [(i + 1) % 3, (i + 2) % 3]
}

/// One member: its objects and what the model says of its group.
struct Member {
    group: Group,
    /// Its chains of each other member (`None` for itself). A removed member's chains are
    /// kept to check that they are refused.
    chains: [Option<MemberChains>; 3],
    /// Whom its group lists.
    members: [bool; 3],
    chain: u64,
    iteration: u32,
    padding: Padding,
    /// Bumped when it starts over with a member (fresh chains): `epochs[s]`.
    epochs: [u32; 3],
}

/// A pool message: its bytes and the member it came from (the transport's word).
#[derive(Clone)]
struct Entry {
    bytes: Vec<u8>,
    sender: usize,
}

struct Harness {
    id: GroupId,
    keys: [IdentityKey; 3],
    members: Vec<Member>,
    registry: Registry,
    pool: Vec<Entry>,
    distributions: Vec<(usize, Vec<u8>)>,
    /// (receiver, its epoch for the sender, message bytes): decrypted once already.
    decrypted: HashSet<(usize, u32, Vec<u8>)>,
    /// (receiver, epoch, chain id) -> the first iteration the receiver can decrypt.
    starts: std::collections::HashMap<(usize, u32, u64), u32>,
    rng: ChaCha20Rng,
    sent: usize,
    reloads: usize,
}

impl Harness {
    fn new() -> Self {
        let s = start();
        let members = (0..3)
            .map(|i| {
                let group = Group::from_bytes(&s.groups[i]).unwrap();
                Member {
                    chain: group.chain_id(),
                    iteration: group.iteration(),
                    padding: group.padding(),
                    group,
                    chains: core::array::from_fn(|j| {
                        s.chains[i][j]
                            .as_ref()
                            .map(|b| MemberChains::from_bytes(b).unwrap())
                    }),
                    members: core::array::from_fn(|j| j != i),
                    epochs: [0; 3],
                }
            })
            .collect();
        let mut starts = std::collections::HashMap::new();
        for (sender, d) in &s.distributions {
            for r in others(*sender) {
                starts.insert((r, 0, be_u64(d, DIST_CHAIN)), 0);
            }
        }
        Harness {
            id: s.id,
            keys: s.keys,
            members,
            registry: s.registry.clone(),
            pool: Vec::new(),
            distributions: s.distributions.clone(),
            decrypted: HashSet::new(),
            starts,
            rng: rng(0x6_5e56),
            sent: 0,
            reloads: 0,
        }
    }

    fn apply(&mut self, op: GroupOp) {
        match op {
            GroupOp::Encrypt {
                from,
                len,
                unpadded,
            } => self.encrypt(from as usize % 3, len, unpadded),
            GroupOp::Deliver { msg, to, spoof } => self.deliver(msg, to, spoof),
            GroupOp::Duplicate { msg } => {
                if !self.pool.is_empty() {
                    let e = self.pool[msg as usize % self.pool.len()].clone();
                    self.pool.push(e);
                }
            }
            GroupOp::Reorder { a, b } => {
                if !self.pool.is_empty() {
                    let n = self.pool.len();
                    self.pool.swap(a as usize % n, b as usize % n);
                }
            }
            GroupOp::Tamper { msg, at, xor } => self.tamper(msg, at, xor),
            GroupOp::Distribute { from, to } => {
                let from = from as usize % 3;
                let to = others(from)[to as usize % 2];
                if self.members[from].members[to] {
                    let d = self.members[from].group.distribution().to_bytes().to_vec();
                    self.registry.distribution(&self.keys[from], &d);
                    self.distributions.push((from, d.clone()));
                    self.take_distribution(from, to, &d);
                }
            }
            GroupOp::Resend { dist, to } => {
                let (from, d) =
                    self.distributions[dist as usize % self.distributions.len()].clone();
                let to = others(from)[to as usize % 2];
                self.take_distribution(from, to, &d);
            }
            GroupOp::Remove { by, who } => self.remove(by as usize % 3, who),
            GroupOp::Add { by, who } => self.add(by as usize % 3, who),
            GroupOp::Rotate { by } => {
                let by = by as usize % 3;
                let d = self.members[by].group.rotate(&mut self.rng).unwrap();
                self.new_chain(by, d.chain_id());
            }
            GroupOp::Reload { who, sealed } => self.reload(who as usize % 3, sealed),
        }
    }

    /// Member `by` has a new sending chain (rotated): it is recorded, and its
    /// distribution is kept for `Resend`.
    fn new_chain(&mut self, by: usize, id: u64) {
        let m = &mut self.members[by];
        assert_ne!(id, m.chain, "a new chain kept the old id");
        assert_eq!(m.group.chain_id(), id);
        assert_eq!(m.group.iteration(), 0);
        m.chain = id;
        m.iteration = 0;
        assert_eq!(self.registry.chain_of(&m.group), id);
        let d = m.group.distribution().to_bytes().to_vec();
        self.registry.distribution(&self.keys[by], &d);
        self.distributions.push((by, d));
        self.check_group(by);
    }

    /// Member `i`'s group agrees with the model.
    fn check_group(&self, i: usize) {
        let m = &self.members[i];
        let listed: Vec<&IdentityKey> = (0..3)
            .filter(|&j| m.members[j])
            .map(|j| &self.keys[j])
            .collect();
        let mut sorted = listed.clone();
        sorted.sort_by_key(|k| *k.as_bytes());
        assert_eq!(m.group.members().iter().collect::<Vec<_>>(), sorted);
        for j in 0..3 {
            assert_eq!(m.group.is_member(&self.keys[j]), m.members[j]);
        }
        assert_eq!(m.group.chain_id(), m.chain);
        assert_eq!(m.group.iteration(), m.iteration);
        assert_eq!(m.group.padding(), m.padding);
        let stored = m.group.to_bytes();
        assert_eq!(stored[STORED_GROUP_PADDING], padding_byte(m.padding));
    }

    fn encrypt(&mut self, from: usize, len: u8, unpadded: bool) {
        let padding = if unpadded {
            Padding::None
        } else {
            Padding::Padme
        };
        let plaintext: Vec<u8> = format!("{from}:{}:", self.sent)
            .into_bytes()
            .into_iter()
            .chain(core::iter::repeat(b'x'))
            .take(usize::from(len).max(8))
            .collect();
        self.sent += 1;
        let m = &mut self.members[from];
        m.group.set_padding(padding);
        m.padding = padding;
        let bytes = m.group.encrypt(&plaintext).unwrap();
        assert_eq!(
            bytes.len(),
            GROUP_OVERHEAD + encoded_length(padding, plaintext.len())
        );
        assert_eq!(bytes[MESSAGE_GROUP], *self.id.as_bytes());
        assert_eq!(be_u64(&bytes, MESSAGE_CHAIN), m.chain);
        assert_eq!(be_u32(&bytes, MESSAGE_ITERATION), m.iteration);
        m.iteration += 1;
        // The registry checks the commitment against SPEC.md §11.1.
        self.registry.message(&bytes, Some(plaintext));
        self.pool.push(Entry {
            bytes,
            sender: from,
        });
        self.check_group(from);
    }

    fn tamper(&mut self, msg: u8, at: u16, xor: u8) {
        if self.pool.is_empty() {
            return;
        }
        let mut e = self.pool[msg as usize % self.pool.len()].clone();
        if e.bytes.is_empty() {
            // Cut to nothing by an earlier `Tamper`: nothing left to alter.
            return;
        }
        let at = usize::from(at) % e.bytes.len();
        if xor == 0 {
            e.bytes.truncate(at);
        } else {
            e.bytes[at] ^= xor;
        }
        self.pool.push(e);
    }

    fn deliver(&mut self, msg: u8, to: u8, spoof: bool) {
        if self.pool.is_empty() {
            return;
        }
        let e = self.pool[msg as usize % self.pool.len()].clone();
        let [to, third] = {
            let o = others(e.sender);
            let to = o[to as usize % 2];
            [to, if o[0] == to { o[1] } else { o[0] }]
        };
        let of = if spoof { third } else { e.sender };
        let signer = self.registry.signer(&e.bytes);
        let m = &mut self.members[to];
        let epoch = m.epochs[of];
        let chains = m.chains[of].as_mut().unwrap();
        // (A message cut short by `Tamper` may have no chain id.)
        let id = (e.bytes.len() >= MESSAGE_ITERATION).then(|| be_u64(&e.bytes, MESSAGE_CHAIN));
        let held = chains.chain_ids().any(|c| Some(c) == id);
        let result = group_decrypt_checked(&m.group, chains, &e.bytes, signer, &self.registry);

        // The invariants, on top of the reference receiver.
        let genuine = self.registry.messages.get(&e.bytes).cloned();
        let key = (to, epoch, e.bytes.clone());
        match &genuine {
            None => assert!(result.is_err(), "an altered message decrypted"),
            Some(_) if spoof => assert!(
                result.is_err(),
                "another member's chains decrypted a message"
            ),
            Some(g) => {
                let iteration = be_u32(&e.bytes, MESSAGE_ITERATION);
                let start = id.and_then(|id| self.starts.get(&(to, epoch, id)).copied());
                if !m.members[of] {
                    assert_eq!(
                        result,
                        Err(Error::NotGroupMember),
                        "a removed member's message"
                    );
                } else if self.decrypted.contains(&key) {
                    assert_eq!(
                        result,
                        Err(Error::DuplicateOrExpired),
                        "a message decrypted twice"
                    );
                } else if held && start.is_some_and(|s| s <= iteration) {
                    assert_eq!(
                        result.as_ref().ok(),
                        g.plaintext.as_ref(),
                        "a member's message did not decrypt to its plaintext"
                    );
                }
            }
        }
        if result.is_ok() {
            assert!(self.decrypted.insert(key), "a message decrypted twice");
        }
    }

    /// Member `to` takes distribution `d` of member `from`.
    fn take_distribution(&mut self, from: usize, to: usize, d: &[u8]) {
        let m = &mut self.members[to];
        let epoch = m.epochs[from];
        let chains = m.chains[from].as_mut().unwrap();
        let held_before: Vec<u64> = chains.chain_ids().collect();
        let outcome = distribution_checked(&m.group, &self.keys[from], chains, d, &self.registry);
        let id = be_u64(d, DIST_CHAIN);
        if !m.members[from] {
            assert_eq!(
                outcome,
                Err(Error::NotGroupMember),
                "a removed member's distribution"
            );
        }
        match outcome {
            Ok(DistributionOutcome::Added { .. }) => {
                assert!(!held_before.contains(&id));
                self.starts
                    .insert((to, epoch, id), be_u32(d, DIST_ITERATION));
                // A chain taken again (evicted, then its id forgotten by the retired list,
                // SPEC.md §11.4): its messages are new to the new holding.
                self.decrypted.retain(|(r, ep, b)| {
                    !(*r == to && *ep == epoch && be_u64(b, MESSAGE_CHAIN) == id)
                });
            }
            // `Known` or `Advanced`: a held chain, never moved back (the reference
            // receiver checked the chains).
            Ok(_) => assert!(held_before.contains(&id)),
            Err(_) => {}
        }
    }

    fn remove(&mut self, by: usize, who: u8) {
        let who = others(by)[who as usize % 2];
        let m = &mut self.members[by];
        let before = m.group.to_bytes();
        match m.group.remove_member(&self.keys[who], &mut self.rng) {
            Ok(d) => {
                assert!(m.members[who], "removed a device that was not a member");
                m.members[who] = false;
                assert_eq!(d.iteration(), 0);
                self.new_chain(by, d.chain_id());
            }
            Err(e) => {
                assert!(!m.members[who], "could not remove a member: {e:?}");
                assert_eq!(e, Error::NotGroupMember);
                assert_eq!(*m.group.to_bytes(), *before);
            }
        }
    }

    fn add(&mut self, by: usize, who: u8) {
        let who = others(by)[who as usize % 2];
        let m = &mut self.members[by];
        let before = m.group.to_bytes();
        match m.group.add_member(&self.keys[who]) {
            Ok(d) => {
                assert!(!m.members[who], "added a member twice");
                assert_eq!((d.chain_id(), d.iteration()), (m.chain, m.iteration));
                m.members[who] = true;
                // The app deleted the member's chains when it left: it starts over.
                m.chains[who] = Some(MemberChains::new(&self.id, &self.keys[who]));
                m.epochs[who] += 1;
                let bytes = d.to_bytes().to_vec();
                self.registry.distribution(&self.keys[by], &bytes);
                self.distributions.push((by, bytes));
            }
            Err(e) => {
                assert!(m.members[who], "could not add a device: {e:?}");
                assert_eq!(e, Error::DuplicateDevice);
                assert_eq!(*m.group.to_bytes(), *before);
            }
        }
        self.check_group(by);
    }

    fn reload(&mut self, who: usize, sealed: bool) {
        if self.reloads >= MAX_RELOADS {
            return;
        }
        self.reloads += 1;
        let key = &fixture().storage_key;
        let context = CONTEXTS[who];
        let mut seal_rng = rng(0x6_5e57 + self.reloads as u64);
        let m = &mut self.members[who];
        let bytes = m.group.to_bytes();
        m.group = if sealed {
            let blob = key.seal(&m.group, context, &mut seal_rng).unwrap();
            key.open::<Group>(&blob, context).unwrap()
        } else {
            Group::from_bytes(&bytes).unwrap()
        };
        assert_eq!(
            *m.group.to_bytes(),
            *bytes,
            "a group re-encodes differently"
        );
        for c in m.chains.iter_mut().flatten() {
            let bytes = c.to_bytes();
            *c = if sealed {
                let blob = key.seal(&*c, context, &mut seal_rng).unwrap();
                key.open::<MemberChains>(&blob, context).unwrap()
            } else {
                MemberChains::from_bytes(&bytes).unwrap()
            };
            assert_eq!(*c.to_bytes(), *bytes, "member chains re-encode differently");
        }
        self.check_group(who);
    }
}

/// The target: see the module documentation.
pub fn group_session(data: &[u8]) {
    let mut h = Harness::new();
    let ops = group_ops_from_bytes(data);
    let any = !ops.is_empty();
    for op in ops {
        h.apply(op);
    }
    if any {
        // Every state the input reached stores and loads again.
        for m in &h.members {
            let bytes = m.group.to_bytes();
            assert_eq!(*Group::from_bytes(&bytes).unwrap().to_bytes(), *bytes);
            for c in m.chains.iter().flatten() {
                let bytes = c.to_bytes();
                check_chains_fields(&MemberChains::from_bytes(&bytes).unwrap(), &bytes);
            }
        }
    }
}
