//! A partner's durable state in the node's redb database (issue 17:
//! "partners' stored blobs. Restart restores from it"): its jobs, sessions
//! and kept chunks fold in redb exactly as in the store model and read
//! back across a reopen; a stored chunk over the bound is a typed error
//! naming its table and key.

use undchain_node::store::{MAX_CHUNK_VALUE, RedbStore};
use undchain_roles::partner::stored::{PartnerOp, StoredChunk};
use undchain_roles::{MemoryStore, Storage, StoreOp};
use undchain_types::msg::{JobNotification, ReceiptTerms, SignedCheckpoint, UsageCheckpoint};
use undchain_types::{
    BlockNumber, BlockTime, BoundedBytes, ChainId, Hash32, JobId, PerceptionScore, SigningKey,
    TokenAmount, UtilityKind,
};

use crate::net::tmp;

fn job(i: u8) -> JobId {
    JobId(Hash32([i; 32]))
}

fn op(o: PartnerOp) -> StoreOp {
    StoreOp::Partner(Box::new(o))
}

fn responded(i: u8) -> StoreOp {
    op(PartnerOp::Responded {
        notification: JobNotification {
            job: job(i),
            kind: UtilityKind::Storage,
            units: 3,
            max_price_per_unit: TokenAmount(3),
            min_partner_score: PerceptionScore::MIN,
            block: BlockNumber(4),
        },
        digest: Hash32([i + 100; 32]),
    })
}

fn chunk(i: u8, index: u32, len: usize) -> StoreOp {
    op(PartnerOp::Chunk {
        job: job(i),
        index,
        chunk: StoredChunk {
            root: Hash32([i; 32]),
            count: 3,
            size: 3 * 1000,
            bytes: BoundedBytes::try_from_vec(vec![index as u8; len]).unwrap(),
        },
    })
}

/// The ops of two storage jobs: one uploaded, checkpointed, offered and
/// closed; one whose blob was dropped; replays of both.
fn batches() -> Vec<Vec<StoreOp>> {
    let client = SigningKey::from_seed([4; 32]);
    let partner = SigningKey::from_seed([5; 32]);
    let checkpoint = UsageCheckpoint {
        chain_id: ChainId(1),
        job: job(1),
        commit_block: BlockNumber(4),
        client: client.public(),
        partner: partner.public(),
        units: 2,
        amount: TokenAmount(4),
        counter: 1,
        at: BlockTime(7),
    };
    let client_sig = client.sign_digest(&checkpoint.digest());
    let terms = ReceiptTerms {
        chain_id: ChainId(1),
        job: job(1),
        commit_block: BlockNumber(4),
        client: client.public(),
        partner: partner.public(),
        units: 3,
        amount: TokenAmount(6),
        finished_at: BlockTime(9),
    };
    let opened = |i: u8| {
        op(PartnerOp::Opened {
            job: job(i),
            client: client.public(),
            root: Some(Hash32([i; 32])),
        })
    };
    vec![
        vec![
            StoreOp::SeqReserved(4096),
            responded(1),
            responded(2),
            op(PartnerOp::Answered {
                job: job(1),
                by: partner.public(),
                client: client.public(),
            }),
        ],
        vec![opened(1), chunk(1, 0, 1000), chunk(1, 1, 1000)],
        vec![
            op(PartnerOp::Checkpoint {
                job: job(1),
                checkpoint: SignedCheckpoint {
                    checkpoint,
                    client_sig,
                },
            }),
            chunk(1, 2, 1000),
            op(PartnerOp::Offered { job: job(1), terms }),
        ],
        vec![opened(2), chunk(2, 0, 1000), chunk(2, 1, 1000)],
        // A replay folds to nothing new; a chunk is kept once.
        vec![responded(1), opened(1), chunk(1, 0, 7)],
        vec![
            op(PartnerOp::Closed {
                job: job(1),
                claim: None,
            }),
            op(PartnerOp::Dropped { job: job(2) }),
            op(PartnerOp::Confirmed { job: job(1) }),
        ],
    ]
}

#[test]
fn partner_ops_fold_in_redb_as_in_the_store_model_across_a_reopen() {
    let dir = tmp("db-partner");
    let path = dir.join("node.redb");
    let mut model = MemoryStore::new();
    {
        let mut db = RedbStore::open(&path).unwrap();
        for b in batches() {
            db.write(&b).unwrap();
            model.write(&b).unwrap();
            assert_eq!(db.load().unwrap(), model.load().unwrap());
        }
    }
    let s = RedbStore::open(&path).unwrap().load().unwrap();
    assert_eq!(s, model.load().unwrap());
    let p = &s.partner;
    assert_eq!(p.jobs.len(), 2);
    assert_eq!((p.chunks_of(&job(1)), p.chunks_of(&job(2))), (3, 0));
    assert_eq!(p.chunks[&(job(1), 0)].bytes.as_bytes(), &[0; 1000][..]);
    let session = p.jobs[&job(1)].session.as_ref().unwrap();
    assert!(session.closed && session.offered.is_some() && session.checkpoint.is_some());
    assert_eq!(s.seq_reserved, 4096);
}

#[test]
fn a_stored_chunk_over_the_bound_is_an_error_naming_table_and_key() {
    let dir = tmp("db-partner-bound");
    let path = dir.join("node.redb");
    RedbStore::open(&path)
        .unwrap()
        .write(&[responded(1), chunk(1, 0, 1000)])
        .unwrap();
    {
        // The value of chunk 0 grown past one chunk on disk.
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&[u8; 36], &[u8]> =
                redb::TableDefinition::new("partner_chunks");
            let mut t = tx.open_table(def).unwrap();
            let mut key = [1u8; 36];
            key[32..].copy_from_slice(&0u32.to_be_bytes());
            let big = vec![0u8; MAX_CHUNK_VALUE + 1];
            t.insert(&key, big.as_slice()).unwrap();
        }
        tx.commit().unwrap();
    }
    let e = RedbStore::open(&path).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(
        e.contains("table partner_chunks") && e.contains("chunk 0"),
        "{e}"
    );
}
