// The agent tools' argument checks and schemas: every refusal names the argument, the schemas list exactly what the
// checks accept, and an argument the agent invents is refused rather than ignored. (The tools against a running
// server, through a real MCP client, are tested by clients/python/tests/test_mcp.py.)
@testable import AgentTools
import MCP
import XCTest

final class ToolArgumentsTests: XCTestCase {
    func tool(_ name: String) -> Tool { ToolCatalog.tools.first { $0.name == name }! }

    func refusal(_ name: String, _ arguments: [String: Value], _ read: (ToolArguments) throws -> Void = { _ in }) -> String? {
        do {
            try read(try ToolArguments(arguments, tool: tool(name)))
            return nil
        } catch let e as ToolError {
            XCTAssertEqual(e.code, "INVALID_ARGUMENT")
            return e.message
        } catch { return "\(error)" }
    }

    func testEverySchemaIsAClosedObjectWhoseRequiredNamesAreProperties() {
        XCTAssertEqual(ToolCatalog.tools.map(\.name),
                       ["recommend", "search_items", "get_items", "similar_items", "record_feedback"])
        for t in ToolCatalog.tools {
            let schema = t.inputSchema.objectValue!
            XCTAssertEqual(schema["type"], "object", t.name)
            XCTAssertEqual(schema["additionalProperties"], false, t.name)
            let properties = schema["properties"]!.objectValue!
            for name in schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                XCTAssertNotNil(properties[name], "\(t.name).\(name)")
            }
            for (name, p) in properties {
                XCTAssertNotNil(p.objectValue?["description"], "\(t.name).\(name) has no description")
            }
            XCTAssertFalse(t.description?.isEmpty ?? true)
        }
    }

    func testUnknownArgumentIsRefusedByName() {
        XCTAssertEqual(refusal("recommend", ["user_id": "u1", "topk": 5])?.hasPrefix("topk: unknown argument"), true)
    }

    func testRequiredArgumentsMustBePresentAndNotNull() {
        XCTAssertEqual(refusal("get_items", [:]), "item_ids: required")
        XCTAssertEqual(refusal("similar_items", ["item_id": .null]), "item_id: required")
        XCTAssertNil(refusal("similar_items", ["item_id": "50"]))
    }

    func testTypesAndRangesAreChecked() {
        XCTAssertEqual(refusal("recommend", ["top_k": "5"]) { _ = try $0.int("top_k", 1...100) },
                       "top_k: expected an integer, got a string")
        XCTAssertEqual(refusal("recommend", ["top_k": 101]) { _ = try $0.int("top_k", 1...100) },
                       "top_k: 101 is out of range 1...100")
        XCTAssertEqual(refusal("recommend", ["top_k": 2.5]) { _ = try $0.int("top_k", 1...100) },
                       "top_k: expected an integer, got a number")
        // A whole number sent as a double (JavaScript agents) is an integer.
        XCTAssertNil(refusal("recommend", ["top_k": 7.0]) { XCTAssertEqual(try $0.int("top_k", 1...100), 7) })
        XCTAssertEqual(refusal("recommend", ["history": ["1", 2]]) { _ = try $0.strings("history", max: 10) },
                       "history[1]: expected a string, got a number")
        XCTAssertEqual(refusal("recommend", ["history": ["1", ""]]) { _ = try $0.strings("history", max: 10) },
                       "history[1]: empty")
        XCTAssertEqual(refusal("recommend", ["include_seen": "yes"]) { _ = try $0.bool("include_seen") },
                       "include_seen: expected true or false, got a string")
        XCTAssertEqual(refusal("record_feedback", ["user_id": "", "item_id": "1"]) { _ = try $0.id("user_id") },
                       "user_id: empty")
    }

    func testMetadataFiltersBecomeTheirJSONText() throws {
        let args = try ToolArguments(["metadata": ["studio": "Pixar", "oscars": 1, "restored": true, "sequel": .null,
                                                   "rating": 8.5, "count": 3.0]], tool: tool("search_items"))
        let pairs = try args.scalars("metadata", max: 16)!
        XCTAssertEqual(pairs.map(\.key), ["count", "oscars", "rating", "restored", "sequel", "studio"])
        XCTAssertEqual(pairs.map(\.value), ["3", "1", "8.5", "true", "null", "Pixar"])
        XCTAssertEqual(refusal("search_items", ["metadata": ["a": [1]]]) { _ = try $0.scalars("metadata", max: 16) },
                       "metadata.a: expected a string, number, boolean or null, got a list")
    }

    func testNullMeansOmitted() throws {
        let args = try ToolArguments(["top_k": .null, "user_id": "u"], tool: tool("recommend"))
        XCTAssertNil(try args.int("top_k", 1...100))
    }
}
