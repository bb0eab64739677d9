// Reading and writing the safetensors format: an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the raw little-endian data. F32, F16 and BF16 are read (converted to
// Float); F32 is written.
import Foundation

public enum SafetensorsDType: String, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16"
    var byteWidth: Int { self == .f32 ? 4 : 2 }
}

/// One tensor's entry in a safetensors header.
public struct SafetensorsEntry: Sendable, Equatable {
    public var dtypeName: String
    public var shape: [Int]
    /// Byte range within the data section.
    public var begin: Int
    public var end: Int
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A safetensors file read into memory (memory-mapped when possible), with its header parsed and checked.
public struct SafetensorsFile: @unchecked Sendable {
    public let path: String
    public let entries: [String: SafetensorsEntry]
    public let metadata: [String: String]
    private let bytes: Foundation.Data
    private let dataStart: Int

    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw CheckpointError.missingFile(path) }
        let bytes = try Foundation.Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        try self.init(bytes: bytes, path: path)
    }

    public init(bytes: Foundation.Data, path: String = "<memory>") throws {
        self.path = path
        self.bytes = bytes
        guard bytes.count >= 8 else {
            throw CheckpointError.truncated(file: path, detail: "\(bytes.count) bytes, the header length alone takes 8")
        }
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(bytes[bytes.startIndex + i]) << (8 * UInt64(i)) }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw CheckpointError.truncated(file: path,
                detail: "header claims \(headerLength) bytes, the file has \(bytes.count - 8) after the length")
        }
        let start = bytes.startIndex + 8
        dataStart = 8 + Int(headerLength)
        let parsed = try Self.parseHeader(bytes.subdata(in: start..<(start + Int(headerLength))),
                                          dataLength: bytes.count - dataStart, path: path)
        entries = parsed.entries
        metadata = parsed.metadata
    }

    /// The tensors and metadata of a header (the JSON after the length), each tensor checked to fit in a data
    /// section of `dataLength` bytes; for readers that fetch the data themselves.
    public static func parseHeader(_ headerBytes: Foundation.Data, dataLength: Int,
                                   path: String) throws -> (entries: [String: SafetensorsEntry], metadata: [String: String]) {
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: headerBytes) }
        catch { throw CheckpointError.malformedHeader(file: path, detail: "not JSON (\(error.localizedDescription))") }
        guard let top = json as? [String: Any] else {
            throw CheckpointError.malformedHeader(file: path, detail: "the header is not a JSON object")
        }
        var entries: [String: SafetensorsEntry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in top {
            if name == "__metadata__" {
                if let m = value as? [String: Any] {
                    for (k, v) in m { if let s = v as? String { metadata[k] = s } }
                }
                continue
            }
            guard let d = value as? [String: Any], let dtype = d["dtype"] as? String,
                  let shape = (d["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  let offsets = (d["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
                  offsets.count == 2 else {
                throw CheckpointError.malformedHeader(file: path, detail: "entry \(name) lacks dtype, shape or data_offsets")
            }
            let entry = SafetensorsEntry(dtypeName: dtype, shape: shape, begin: offsets[0], end: offsets[1])
            guard entry.begin >= 0, entry.begin <= entry.end, shape.allSatisfy({ $0 >= 0 }) else {
                throw CheckpointError.malformedHeader(file: path, detail: "entry \(name) has invalid offsets or shape")
            }
            // The element count (and its byte size) must be representable before anything multiplies or allocates it.
            var count = 8
            for d in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow else {
                    throw CheckpointError.malformedHeader(file: path, detail: "entry \(name) has a shape \(shape) too large to address")
                }
                count = product
            }
            guard entry.end <= dataLength else {
                throw CheckpointError.truncated(file: path,
                    detail: "tensor \(name) ends at byte \(entry.end) of the data section, which has \(dataLength)")
            }
            if let known = SafetensorsDType(rawValue: dtype), known.byteWidth * entry.elementCount != entry.end - entry.begin {
                throw CheckpointError.malformedHeader(file: path,
                    detail: "tensor \(name) spans \(entry.end - entry.begin) bytes, its shape \(shape) in \(dtype) needs \(known.byteWidth * entry.elementCount)")
            }
            entries[name] = entry
        }
        return (entries, metadata)
    }

    public var names: [String] { entries.keys.sorted() }

    /// Copies tensor `name` into `destination` as Float, checking its shape against `expectedShape` when given.
    public func read(_ name: String, into destination: UnsafeMutableBufferPointer<Float>, expectedShape: [Int]? = nil) throws {
        guard let entry = entries[name] else { throw CheckpointError.missingTensor(name: name, file: path) }
        if let expectedShape, expectedShape != entry.shape {
            throw CheckpointError.wrongShape(name: name, expected: expectedShape, found: entry.shape)
        }
        guard let dtype = SafetensorsDType(rawValue: entry.dtypeName) else {
            throw CheckpointError.unsupportedDType(name: name, dtype: entry.dtypeName)
        }
        let count = entry.elementCount
        precondition(destination.count >= count, "destination of \(destination.count) floats for \(count)")
        bytes.withUnsafeBytes { raw in
            let source = UnsafeRawBufferPointer(rebasing: raw[(dataStart + entry.begin)..<(dataStart + entry.end)])
            switch dtype {
            case .f32:
                for i in 0..<count {
                    destination[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                }
            case .f16:
                for i in 0..<count {
                    let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    destination[i] = Float(Float16(bitPattern: bits))
                }
            case .bf16:
                for i in 0..<count {
                    let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    destination[i] = Float(bitPattern: UInt32(bits) << 16)
                }
            }
        }
    }

    /// Tensor `name` as a new Float array.
    public func array(_ name: String, expectedShape: [Int]? = nil) throws -> [Float] {
        guard let entry = entries[name] else { throw CheckpointError.missingTensor(name: name, file: path) }
        // Only a known dtype's size is checked against the file: refuse the others before allocating.
        guard SafetensorsDType(rawValue: entry.dtypeName) != nil else {
            throw CheckpointError.unsupportedDType(name: name, dtype: entry.dtypeName)
        }
        var out = [Float](repeating: 0, count: entry.elementCount)
        try out.withUnsafeMutableBufferPointer { try read(name, into: $0, expectedShape: expectedShape) }
        return out
    }
}

/// Writes F32 safetensors files.
public enum SafetensorsWriter {
    /// A tensor to write: its name, shape and values (row-major, `shape` product elements).
    public struct Tensor {
        public var name: String
        public var shape: [Int]
        public var values: UnsafeBufferPointer<Float>
        public init(name: String, shape: [Int], values: UnsafeBufferPointer<Float>) {
            precondition(shape.reduce(1, *) == values.count, "tensor \(name): shape \(shape) for \(values.count) values")
            self.name = name; self.shape = shape; self.values = values
        }
    }

    /// The file's bytes: tensors in the given order, header keys sorted, header padded with spaces to 8 bytes.
    public static func encode(_ tensors: [Tensor], metadata: [String: String] = [:]) -> Foundation.Data {
        var out = header(tensors.map { ($0.name, $0.shape) }, metadata: metadata)
        out.reserveCapacity(out.count + tensors.reduce(0) { $0 + 4 * $1.values.count })
        for t in tensors {
            #if _endian(big)
            for v in t.values { var b = v.bitPattern.littleEndian; withUnsafeBytes(of: &b) { out.append(contentsOf: $0) } }
            #else
            out.append(UnsafeBufferPointer(start: UnsafeRawPointer(t.values.baseAddress!).assumingMemoryBound(to: UInt8.self),
                                           count: 4 * t.values.count))
            #endif
        }
        return out
    }

    /// The 8-byte length and the header of F32 tensors of these shapes (data in the given order), keys sorted,
    /// padded with spaces to 8 bytes: what precedes the data, for writers that write the data themselves.
    public static func header(_ tensors: [(name: String, shape: [Int])], metadata: [String: String] = [:]) -> Foundation.Data {
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            parts.append("\"__metadata__\":{\(m.joined(separator: ","))}")
        }
        var offset = 0
        for t in tensors {
            let size = 4 * t.shape.reduce(1, *)
            parts.append("\(jsonString(t.name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        header += parts.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out = Foundation.Data(capacity: 8 + headerBytes.count)
        var length = UInt64(headerBytes.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        return out
    }

    public static func write(_ tensors: [Tensor], metadata: [String: String] = [:], to path: String) throws {
        try encode(tensors, metadata: metadata).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}
