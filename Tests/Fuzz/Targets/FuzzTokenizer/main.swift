// libFuzzer target: byte-level BPE encoding of arbitrary text with a tokenizer trained at start-up on item titles
// and the reasoning markers. Input: any bytes, read as UTF-8 (invalid sequences become U+FFFD). Every id must be in
// the vocabulary and decode(encode(s)) == s must hold for every string.
import FuzzSupport
import Model

let tokenizer = try! TokenizerTrainer.train(
    texts: ["Toy Story (1995)", "GoldenEye (1995)", "Four Rooms (1995)", "The user watched <answer>12</answer>",
            "Twelve Monkeys, a science-fiction film; déjà vu — 1995!", "   spaces\tand\nnewlines  ",
            "Les Misérables 2012 Ⅻ 東京物語 🎬🎬"],
    vocabularySize: 300, minFrequency: 1)

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: bytes(data, size), as: UTF8.self)
    let ids = tokenizer.encode(text)
    precondition(ids.allSatisfy { $0 >= 0 && $0 < tokenizer.vocabularySize }, "token id outside the vocabulary")
    precondition(tokenizer.decode(ids) == text, "decode(encode(s)) != s")
    return 0
}

fuzzMain(fuzzOne)
