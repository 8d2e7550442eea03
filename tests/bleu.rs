//! BLEU and chrF equal to sacrebleu 2.6.0's, digit for digit. The expected values and the commands
//! that produced them are in tests/fixtures/bleu/README.md.

use nmt::metrics::{tokenize_13a, Bleu, Chrf};

fn lines(name: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bleu")
        .join(name);
    nmt::data::corpus::read_lines(&path).unwrap()
}

fn s(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

#[test]
fn corpus_bleu_matches_sacrebleu_on_edge_cases() {
    let b = Bleu::corpus(&lines("hyp.txt"), &lines("ref.txt"));
    assert!((b.score - 65.3471018168673).abs() < 1e-9, "{}", b.score);
    assert_eq!(b.correct, [74, 60, 49, 42]);
    assert_eq!(b.total, [95, 88, 81, 74]);
    assert_eq!(
        b.format(),
        "BLEU = 65.35 77.9/68.2/60.5/56.8 (BP = 1.000 ratio = 1.080 hyp_len = 95 ref_len = 88)"
    );
}

#[test]
fn one_sentence_with_brevity_penalty() {
    let b = Bleu::corpus(&lines("hyp.txt")[..1], &lines("ref.txt")[..1]);
    assert!((b.score - 33.010083098515025).abs() < 1e-9, "{}", b.score);
    assert_eq!(
        b.format(),
        "BLEU = 33.01 77.8/50.0/28.6/16.7 (BP = 0.895 ratio = 0.900 hyp_len = 9 ref_len = 10)"
    );
}

#[test]
fn exponential_smoothing_and_degenerate_inputs() {
    let b = Bleu::corpus(
        &s(&["A dog runs fast today, yes."]),
        &s(&["A dog sleeps now here."]),
    );
    assert!((b.score - 12.22307556087252).abs() < 1e-9, "{}", b.score);
    assert_eq!(
        b.format(),
        "BLEU = 12.22 37.5/14.3/8.3/5.0 (BP = 1.000 ratio = 1.333 hyp_len = 8 ref_len = 6)"
    );
    let empty = Bleu::corpus(&s(&[""]), &s(&["A cat."]));
    assert_eq!(
        empty.format(),
        "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 0.000 ratio = 0.000 hyp_len = 0 ref_len = 3)"
    );
    let short = Bleu::corpus(&s(&["A cat"]), &s(&["A cat"]));
    assert_eq!(
        short.format(),
        "BLEU = 0.00 100.0/100.0/0.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 2 ref_len = 2)"
    );
}

#[test]
fn tokenizer_13a_matches_sacrebleu() {
    // python3 -c "from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a as T; print(T()(s))"
    assert_eq!(
        tokenize_13a("The price is 3,000.50 dollars - not 2-3!"),
        "The price is 3,000.50 dollars - not 2 - 3 !"
    );
    assert_eq!(tokenize_13a("lake &amp; sings."), "lake & sings .");
    assert_eq!(
        tokenize_13a("Er sagt: \"Hallo!\" (laut)"),
        "Er sagt : \" Hallo ! \" ( laut )"
    );
}

#[test]
fn chrf_matches_sacrebleu() {
    // python3 -c "from sacrebleu.metrics import CHRF; print(repr(CHRF().corpus_score(h, [r]).score))"
    let c = Chrf::corpus(&lines("hyp.txt"), &lines("ref.txt"));
    assert!((c.score - 75.03782688528996).abs() < 1e-9, "{}", c.score);
    assert_eq!(c.format(), "chrF2 = 75.04");
    let one = Chrf::corpus(&lines("hyp.txt")[..1], &lines("ref.txt")[..1]);
    assert!(
        (one.score - 53.04961308696644).abs() < 1e-9,
        "{}",
        one.score
    );
    let uni = Chrf::corpus(
        &s(&["Ein Kind – „lacht“ 東京"]),
        &s(&["Ein Kind „lacht“ – 東京!"]),
    );
    assert!(
        (uni.score - 60.827155289162924).abs() < 1e-9,
        "{}",
        uni.score
    );
    assert_eq!(Chrf::corpus(&s(&[""]), &s(&["A cat."])).score, 0.0);
    assert_eq!(
        Chrf::corpus(&s(&["xyz qq"]), &s(&["A cat sleeps."])).score,
        0.0
    );
}
