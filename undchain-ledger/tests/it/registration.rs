//! Validator registration (design notes, validator story item 1;
//! docs/PROTOCOL.md "Discovery and registration"): what the ledger
//! commits, and the attacks it refuses with a typed error.

use undchain_ledger::{Applied, Ledger, LedgerError, LedgerOp, StateKey};
use undchain_types::msg::{TransactionBody, TxOp, ValidatorRegistration};
use undchain_types::{BlockNumber, BoundedString, BoundedVec, TokenAmount, Trust};

use crate::support::*;

const NEWCOMER: u64 = 40;
const SPONSOR: u64 = 41;
const GENESIS_VALIDATOR: u64 = 42;

fn consented(key: u64, trust: Trust) -> TxOp {
    TxOp::RegisterValidator(Box::new(ValidatorRegistration::consented(
        CHAIN,
        &sk(key),
        trust,
        BoundedString::truncating("v-new"),
        BoundedVec::new(),
    )))
}

fn funded() -> Ledger {
    Ledger::genesis_with_validators(
        config(),
        BlockNumber(0),
        [(NEWCOMER, 100), (SPONSOR, 100), (OWNER, 100)]
            .iter()
            .map(|(k, a)| (pk(*k), TokenAmount(*a))),
        [(pk(GENESIS_VALIDATOR), Trust::Known)],
    )
    .unwrap()
}

#[test]
fn registration_is_committed_with_its_fee_and_provable() {
    let mut l = funded();
    let t = tx(&l, NEWCOMER, consented(NEWCOMER, Trust::Unknown));
    assert!(l.check(&t).is_ok());
    let out = ops(&mut l, &[t]);
    assert!(out.refused.is_empty(), "{:?}", out.refused);
    assert_eq!(
        out.applied,
        vec![Applied::ValidatorRegistered {
            validator: pk(NEWCOMER),
            trust: Trust::Unknown,
            block: BlockNumber(0),
        }]
    );
    let record = l.validator(&pk(NEWCOMER)).unwrap().clone();
    assert_eq!(
        (record.trust, record.alias.as_str()),
        (Trust::Unknown, "v-new")
    );
    // The fee went to the pool, the nonce grew.
    assert_eq!(balance(&l, NEWCOMER), 100 - FEE);
    assert_eq!(l.account(&pk(NEWCOMER)).nonce, 1);
    // The record is a leaf of the committed state root.
    let key = StateKey::Validator(pk(NEWCOMER));
    let proof = l.prove(&key).unwrap();
    assert!(undchain_ledger::ledger::state::verify_leaf(
        l.config().hash_algorithm,
        &l.root(),
        &key,
        &record,
        &proof
    ));
    // A sponsor may pay for an unknown validator that consented.
    let t = tx(&l, SPONSOR, consented(77, Trust::Unknown));
    assert!(ops(&mut l, &[t]).refused.is_empty());
    assert!(l.validator(&pk(77)).is_some());
    assert_conserved(&l);
}

#[test]
fn registration_with_a_bad_consent_signature_is_refused() {
    let l = funded();
    // The registration names the newcomer but someone else signed the
    // consent: a key is never registered without its holder.
    let mut reg = ValidatorRegistration::consented(
        CHAIN,
        &sk(SPONSOR),
        Trust::Unknown,
        BoundedString::default(),
        BoundedVec::new(),
    );
    reg.validator = pk(NEWCOMER);
    let t = TransactionBody {
        chain_id: CHAIN,
        sender: pk(SPONSOR),
        nonce: 0,
        fee: TokenAmount(FEE),
        op: TxOp::RegisterValidator(Box::new(reg)),
    }
    .sign(&sk(SPONSOR));
    assert_eq!(
        l.verify(LedgerOp::Transaction(t)),
        Err(LedgerError::BadSignature {
            signer: pk(NEWCOMER)
        })
    );
    // Consent given for another chain does not verify here either.
    let other = ValidatorRegistration::consented(
        undchain_types::ChainId(99),
        &sk(NEWCOMER),
        Trust::Unknown,
        BoundedString::default(),
        BoundedVec::new(),
    );
    let t = TransactionBody {
        chain_id: CHAIN,
        sender: pk(NEWCOMER),
        nonce: 0,
        fee: TokenAmount(FEE),
        op: TxOp::RegisterValidator(Box::new(other)),
    }
    .sign(&sk(NEWCOMER));
    assert!(matches!(
        l.verify(LedgerOp::Transaction(t)),
        Err(LedgerError::BadSignature { .. })
    ));
}

#[test]
fn replayed_registration_is_refused_and_changes_nothing() {
    let mut l = funded();
    let t = tx(&l, NEWCOMER, consented(NEWCOMER, Trust::Unknown));
    let out = ops(&mut l, &[t.clone(), t.clone()]);
    assert_eq!(out.applied.len(), 1);
    assert_eq!(
        out.refused[0].error,
        LedgerError::BadNonce {
            account: pk(NEWCOMER),
            expected: 1,
            got: 0
        }
    );
    // In a later block too.
    let root = l.root();
    let out = ops(&mut l, &[t]);
    assert!(matches!(out.refused[0].error, LedgerError::BadNonce { .. }));
    // The same registration under a fresh nonce: registered already.
    let again = tx(&l, NEWCOMER, consented(NEWCOMER, Trust::Unknown));
    assert_eq!(
        l.check(&again),
        Err(LedgerError::AlreadyRegistered {
            validator: pk(NEWCOMER),
            since: BlockNumber(0)
        })
    );
    // A genesis validator is registered from the genesis.
    let genesis = tx(&l, SPONSOR, consented(GENESIS_VALIDATOR, Trust::Unknown));
    assert!(matches!(
        l.check(&genesis),
        Err(LedgerError::AlreadyRegistered { .. })
    ));
    assert_eq!(balance(&l, NEWCOMER), 100 - FEE);
    assert_ne!(root, l.root(), "the empty block still moved the meta leaf");
    assert_conserved(&l);
}

#[test]
fn only_the_chain_owner_registers_a_known_validator() {
    let mut l = funded();
    // The newcomer consents to being known, but it is not the owner.
    let t = tx(&l, NEWCOMER, consented(NEWCOMER, Trust::Known));
    let out = ops(&mut l, &[t]);
    assert_eq!(
        out.refused[0].error,
        LedgerError::NotChainOwner {
            sender: pk(NEWCOMER)
        }
    );
    assert!(l.validator(&pk(NEWCOMER)).is_none());
    assert_eq!(
        balance(&l, NEWCOMER),
        100,
        "a refused registration costs nothing"
    );
    // The chain owner appoints it, with its consent.
    let t = tx(&l, OWNER, consented(NEWCOMER, Trust::Known));
    let out = ops(&mut l, &[t]);
    assert!(out.refused.is_empty(), "{:?}", out.refused);
    assert_eq!(l.validator(&pk(NEWCOMER)).unwrap().trust, Trust::Known);
    assert_conserved(&l);
}

#[test]
fn registration_without_the_fee_is_refused() {
    let mut l = funded();
    let t = tx(&l, 90, consented(90, Trust::Unknown));
    assert!(matches!(
        ops(&mut l, &[t]).refused[0].error,
        LedgerError::InsufficientFreeBalance { .. }
    ));
    assert!(l.validator(&pk(90)).is_none());
}
