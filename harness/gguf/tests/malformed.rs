//! The reader against malformed files: every corruption gives a typed error, never a panic or a huge allocation.

use edgebench_gguf::synth::{tiny_model, TinyConfig};
use edgebench_gguf::{parse, GgmlType, GgufError, GgufFile, GgufWriter, Value, ValueType};

fn tiny() -> Vec<u8> {
    tiny_model(&TinyConfig { n_layer: 1, ..TinyConfig::default() }).unwrap().to_bytes().unwrap()
}

/// Header bytes by hand: magic, version, tensor count, kv count.
fn header(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&n_tensors.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    b
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

/// A file with one tensor info written by hand: name, dims, type id, offset; then `data_len` bytes of data.
fn one_tensor(dims: &[u64], ty: u32, offset: u64, data_len: usize) -> Vec<u8> {
    let mut b = header(3, 1, 0);
    put_str(&mut b, "t");
    b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    dims.iter().for_each(|d| b.extend_from_slice(&d.to_le_bytes()));
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(&offset.to_le_bytes());
    b.resize(b.len().div_ceil(32) * 32 + data_len, 0);
    b
}

#[test]
fn the_tiny_model_is_valid() {
    let g = parse(&tiny()).unwrap();
    assert!(g.parameter_count() > 0);
}

#[test]
fn truncated_at_every_offset_is_an_error() {
    let full = tiny();
    // Every prefix shorter than the last tensor's end must fail; step through the header byte by byte and the
    // data region coarsely.
    let header_end = parse(&full).unwrap().data_offset as usize;
    let cuts = (0..header_end).chain((header_end..full.len()).step_by(97));
    for cut in cuts {
        match parse(&full[..cut]) {
            Err(GgufError::Truncated { .. })
            | Err(GgufError::CountTooLarge { .. })
            | Err(GgufError::TensorOutOfBounds { .. }) => {}
            other => panic!("cut at {cut}: expected a truncation error, got {other:?}"),
        }
    }
}

#[test]
fn bad_magic_and_version() {
    let mut b = tiny();
    b[0] = b'X';
    assert!(matches!(parse(&b), Err(GgufError::BadMagic { .. })));
    for v in [0u32, 1, 4, u32::MAX] {
        let b = header(v, 0, 0);
        assert!(matches!(parse(&b), Err(GgufError::UnsupportedVersion { version }) if version == v));
    }
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    for (nt, nkv) in [(u64::MAX, 0), (0, u64::MAX), (1 << 40, 0), (0, 1 << 40)] {
        let b = header(3, nt, nkv);
        assert!(matches!(parse(&b), Err(GgufError::CountTooLarge { .. })), "{nt} {nkv}");
    }
}

#[test]
fn huge_string_and_array_lengths() {
    let mut b = header(3, 0, 1);
    b.extend_from_slice(&u64::MAX.to_le_bytes()); // key length
    assert!(matches!(parse(&b), Err(GgufError::CountTooLarge { .. })));

    let mut b = header(3, 0, 1);
    put_str(&mut b, "k");
    b.extend_from_slice(&(ValueType::Array as u32).to_le_bytes());
    b.extend_from_slice(&(ValueType::U32 as u32).to_le_bytes());
    b.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert!(matches!(parse(&b), Err(GgufError::CountTooLarge { .. })));

    let mut b = header(3, 0, 1);
    put_str(&mut b, "k");
    b.extend_from_slice(&(ValueType::String as u32).to_le_bytes());
    b.extend_from_slice(&(1u64 << 50).to_le_bytes());
    assert!(matches!(parse(&b), Err(GgufError::CountTooLarge { .. })));
}

#[test]
fn unknown_value_types_invalid_utf8_nested_arrays() {
    let mut b = header(3, 0, 1);
    put_str(&mut b, "k");
    b.extend_from_slice(&13u32.to_le_bytes());
    assert!(matches!(parse(&b), Err(GgufError::UnknownValueType { code: 13, .. })));

    let mut b = header(3, 0, 1);
    b.extend_from_slice(&2u64.to_le_bytes());
    b.extend_from_slice(&[0xff, 0xfe]);
    b.extend_from_slice(&[0; 16]);
    assert!(matches!(parse(&b), Err(GgufError::InvalidUtf8 { .. })));

    let mut b = header(3, 0, 1);
    put_str(&mut b, "k");
    b.extend_from_slice(&(ValueType::Array as u32).to_le_bytes());
    b.extend_from_slice(&(ValueType::Array as u32).to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    assert!(matches!(parse(&b), Err(GgufError::NestedArray { .. })));
}

#[test]
fn duplicate_keys_and_tensors() {
    let mut b = header(3, 0, 2);
    for _ in 0..2 {
        put_str(&mut b, "k");
        b.extend_from_slice(&(ValueType::U8 as u32).to_le_bytes());
        b.push(1);
    }
    assert!(matches!(parse(&b), Err(GgufError::DuplicateKey { .. })));

    let mut w = GgufWriter::new();
    w.tensor("t", &[32], GgmlType::F32, vec![0; 128]).tensor("t", &[32], GgmlType::F32, vec![0; 128]);
    assert!(matches!(parse(&w.to_bytes().unwrap()), Err(GgufError::DuplicateTensor { .. })));
}

#[test]
fn tensor_dimension_errors() {
    assert!(matches!(parse(&one_tensor(&[1; 5], 0, 0, 4)), Err(GgufError::TooManyDims { n_dims: 5, .. })));
    assert!(matches!(parse(&one_tensor(&[4, 0], 0, 0, 0)), Err(GgufError::ZeroDim { .. })));
    let overflow = [u64::MAX / 2, 4];
    assert!(matches!(parse(&one_tensor(&overflow, 0, 0, 0)), Err(GgufError::DimOverflow { .. })));
    // 2^62 F32 elements: the element count fits u64 but the byte size does not.
    assert!(matches!(parse(&one_tensor(&[1 << 31, 1 << 31], 0, 0, 0)), Err(GgufError::DimOverflow { .. })));
    assert!(matches!(parse(&one_tensor(&[31], 8, 0, 64)), Err(GgufError::PartialBlock { block: 32, .. })));
}

#[test]
fn unknown_tensor_types() {
    for code in [4u32, 5, 16, 31, 1000, u32::MAX] {
        let r = parse(&one_tensor(&[32], code, 0, 4096));
        assert!(matches!(r, Err(GgufError::UnknownTensorType { .. })), "type {code}: {r:?}");
    }
}

#[test]
fn offsets_past_the_end_misaligned_and_overlapping() {
    assert!(matches!(parse(&one_tensor(&[32], 0, 0, 127)), Err(GgufError::TensorOutOfBounds { .. })));
    assert!(matches!(parse(&one_tensor(&[32], 0, u64::MAX - 31, 128)), Err(GgufError::TensorOutOfBounds { .. })));
    assert!(matches!(parse(&one_tensor(&[32], 0, 8, 256)), Err(GgufError::MisalignedTensor { offset: 8, .. })));

    // Two tensors whose offsets are patched to overlap.
    let mut w = GgufWriter::new();
    w.tensor("a", &[64], GgmlType::F32, vec![0; 256]).tensor("b", &[64], GgmlType::F32, vec![0; 256]);
    let mut b = w.to_bytes().unwrap();
    let g = parse(&b).unwrap();
    assert_eq!(g.tensor("b").unwrap().offset, 256);
    let pos = b.windows(8).rposition(|x| x == 256u64.to_le_bytes()).unwrap();
    b[pos..pos + 8].copy_from_slice(&128u64.to_le_bytes());
    assert!(matches!(parse(&b), Err(GgufError::OverlappingTensors { .. })));
}

#[test]
fn zero_and_odd_alignment() {
    for a in [0u32, 3, 48] {
        let mut w = GgufWriter::new();
        w.kv("general.alignment", Value::U32(a));
        let mut b = header(3, 0, 1);
        put_str(&mut b, "general.alignment");
        b.extend_from_slice(&(ValueType::U32 as u32).to_le_bytes());
        b.extend_from_slice(&a.to_le_bytes());
        assert!(matches!(parse(&b), Err(GgufError::BadAlignment { .. })), "alignment {a}");
        assert!(w.to_bytes().is_err());
    }
    let mut b = header(3, 0, 1);
    put_str(&mut b, "general.alignment");
    b.extend_from_slice(&(ValueType::String as u32).to_le_bytes());
    put_str(&mut b, "64");
    assert!(matches!(parse(&b), Err(GgufError::WrongType { .. })));
}

#[test]
fn writer_round_trips_metadata_and_custom_alignment() {
    let mut w = GgufWriter::new();
    w.kv("general.alignment", Value::U32(64))
        .kv("a", Value::Array(ValueType::F32, vec![Value::F32(1.5), Value::F32(-2.0)]))
        .kv("b", Value::I64(-5))
        .tensor("x", &[32, 2], GgmlType::Q8_0, vec![1; 68])
        .tensor("y", &[3], GgmlType::F32, vec![2; 12]);
    let bytes = w.to_bytes().unwrap();
    let g = parse(&bytes).unwrap();
    assert_eq!(g.alignment, 64);
    assert_eq!(g.data_offset % 64, 0);
    assert_eq!(g.get("b").unwrap().as_i64(), Some(-5));
    assert_eq!(g.array("a").unwrap()[1], Value::F32(-2.0));
    let y = g.tensor("y").unwrap();
    assert_eq!(y.offset, 128);
    assert_eq!(g.tensor_data(&bytes, y), &[2u8; 12]);
}

#[test]
fn files_name_themselves_in_errors() {
    let dir = tempdir();
    let p = dir.join("bad.gguf");
    std::fs::write(&p, b"GGUF\x03\0\0\0").unwrap();
    let err = GgufFile::open(&p).unwrap_err().to_string();
    assert!(err.contains("bad.gguf") && err.contains("truncated"), "{err}");
    let missing = dir.join("missing.gguf");
    let err = GgufFile::open(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.gguf"), "{err}");
    std::fs::write(&p, vec![b'A'; 4096]).unwrap();
    let err = GgufFile::open(&p).unwrap_err().to_string();
    assert!(err.contains("not a GGUF file"), "{err}");
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("edgebench-gguf-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn decode_weight_bytes_count_the_embedding_table_only_when_it_is_the_output_projection() {
    let g = parse(&tiny()).unwrap();
    let all: u64 = g.tensors.iter().map(|t| t.n_bytes).sum();
    let embd = g.tensor("token_embd.weight").unwrap().n_bytes;
    assert!(g.tensor("output.weight").is_err(), "the tiny model is tied");
    assert_eq!(g.decode_weight_bytes(), all);
    // The same tensors with an untied output: the table is read one row a token, the output in full.
    let mut w = GgufWriter::new();
    for t in &g.tensors {
        w.tensor(&t.name, &t.dims, t.ty, vec![0u8; t.n_bytes as usize]);
    }
    let table = g.tensor("token_embd.weight").unwrap();
    w.tensor("output.weight", &table.dims, GgmlType::F32, vec![0u8; table.n_elements as usize * 4]);
    let untied = parse(&w.to_bytes().unwrap()).unwrap();
    assert_eq!(untied.decode_weight_bytes(), all - embd + table.n_elements * 4);
}
