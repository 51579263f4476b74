//! The reader against what the writer writes, and against the running
//! kernel's BTF (a test that cannot read it fails).

use btf::write::{BtfWriter, Linkage};
use btf::{Btf, Kind};

#[test]
fn the_reader_finds_what_the_writer_wrote() {
    let mut w = BtfWriter::default();
    let int = w.int("int", 4, true);
    let void_ptr = w.ptr(0);
    let u32_ = w.typedef("__u32", int);
    let proto = w.func_proto(u32_, &[("ctx", void_ptr), ("len", int)]);
    let func = w.func("f", proto, Linkage::Static);
    let btf = Btf::parse(w.to_bytes()).unwrap();
    assert!(btf.has_function("f"));
    assert_eq!(btf.find("f", Kind::Func), Some(func));
    assert_eq!(btf.prototype(func), Some((u32_, 2)));
    assert_eq!(btf.resolve(u32_), int);
    assert_eq!(btf.type_name(void_ptr), "void *");
    let params = btf.function_params("f").unwrap();
    assert_eq!(params.len(), 2);
    assert_eq!((params[1].name.as_str(), params[1].type_id), ("len", int));
}

#[test]
fn a_blob_without_the_magic_or_with_sections_past_its_end_is_refused() {
    assert!(Btf::parse(vec![0; 24]).err().unwrap().contains("magic"));
    let mut bytes = BtfWriter::default().to_bytes();
    bytes[12] = 0xff; // type_len past the end
    assert!(Btf::parse(bytes).err().unwrap().contains("out of bounds"));
}

#[test]
fn the_kernel_btf_has_the_sk_buff_fields_and_tracepoints_the_tracing_hooks_read() {
    let btf = Btf::vmlinux()
        .map_err(|e| e.to_string())
        .expect("this kernel's BTF (CONFIG_DEBUG_INFO_BTF)");
    assert!(btf.member_offset("sk_buff", "len").is_some());
    assert!(btf.member_offset("sk_buff", "data").is_some());
    assert!(btf.tracepoint_args("kfree_skb").is_some_and(|n| n >= 2));
    assert!(btf.tracepoint_id("kfree_skb").is_some());
    assert!(btf.function_id("ip_rcv").is_some());
    assert!(!btf.enum_values("skb_drop_reason").is_empty());
    let params = btf.function_params("consume_skb");
    let params = params.expect("consume_skb in BTF");
    assert!(btf.is_ptr_to_struct(params[0].type_id, "sk_buff"));
}
