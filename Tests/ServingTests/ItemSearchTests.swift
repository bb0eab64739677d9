// SearchItems over a five-item catalogue whose answers are worked out by hand: each filter alone, filters together,
// the most-rated-first order with ties by id, paging, metadata values of every JSON type, and every refusal naming
// its field.
import Data
import Eval
@testable import Serving
import XCTest

final class ItemSearchTests: XCTestCase {
    // id, title, year, genres, ratings.
    let rows: [(String, String, Int, [String], Int)] = [
        ("1", "Toy Story", 1995, ["Animation", "Comedy"], 50),
        ("2", "GoldenEye", 1995, ["Action", "Thriller"], 30),
        ("3", "Toy Story 2", 1999, ["Animation", "Comedy"], 50),
        ("4", "Star Wars", 1977, ["Action", "Sci-Fi"], 80),
        ("5", "Untitled", 0, [], 0),
    ]
    let metadata = ["1": #"{"studio": "Pixar", "oscars": 1, "restored": true, "sequel": null}"#,
                    "3": #"{"studio": "Pixar", "oscars": 0, "nested": {"a": 1}}"#,
                    "4": #"{"studio": "Lucasfilm", "rating": 8.5}"#]

    var model: ServedModel {
        let catalog = Catalog(items: rows.map { Item(id: $0.0, title: $0.1, year: $0.2, genres: $0.3) })
        return ServedModel(name: "m", recommender: Popularity(training: [], catalog: catalog), datasetName: "t",
                           userHistories: [:], itemStats: rows.map { ItemStats(count: $0.4, meanRating: 4) })
    }

    func search(_ edit: (inout ItemSearchQuery) -> Void) throws -> ItemSearchResult {
        var q = ItemSearchQuery()
        edit(&q)
        return try ItemSearch.search(q, model: model, stored: { id in
            self.metadata[id].map { CatalogItem(item: Item(id: id), metadataJSON: $0, created: 1_700_000_000) }
        })
    }

    func ids(_ r: ItemSearchResult) -> [String] { r.items.map(\.itemId) }

    func testEmptyQueryListsEveryItemMostRatedFirstTiesByAscendingId() throws {
        let r = try search { _ in }
        XCTAssertEqual(ids(r), ["4", "1", "3", "2", "5"])
        XCTAssertEqual(r.totalMatches, 5)
    }

    func testTitleSubstringIgnoresCase() throws {
        XCTAssertEqual(ids(try search { $0.query = "toy STORY" }), ["1", "3"])
        XCTAssertEqual(ids(try search { $0.query = "story 2" }), ["3"])
        XCTAssertEqual(try search { $0.query = "zzz" }.totalMatches, 0)
    }

    func testEveryGenreMustMatch() throws {
        XCTAssertEqual(ids(try search { $0.genres = ["action"] }), ["4", "2"])
        XCTAssertEqual(ids(try search { $0.genres = ["Action", "Sci-Fi"] }), ["4"])
        XCTAssertEqual(ids(try search { $0.genres = ["Action", "Comedy"] }), [])
    }

    func testYearBoundsAreInclusiveAndSkipUnknownYears() throws {
        XCTAssertEqual(ids(try search { $0.minYear = 1995 }), ["1", "3", "2"])
        XCTAssertEqual(ids(try search { $0.minYear = 1995; $0.maxYear = 1995 }), ["1", "2"])
        XCTAssertEqual(ids(try search { $0.maxYear = 1980 }), ["4"])
    }

    func testMetadataFiltersCompareStringsAsTextAndScalarsByJSONText() throws {
        XCTAssertEqual(ids(try search { $0.metadata = [MetadataFilter(key: "studio", value: "Pixar")] }), ["1", "3"])
        XCTAssertEqual(ids(try search { $0.metadata = [MetadataFilter(key: "oscars", value: "1")] }), ["1"])
        XCTAssertEqual(ids(try search { $0.metadata = [MetadataFilter(key: "oscars", value: "0")] }), ["3"])
        XCTAssertEqual(ids(try search { $0.metadata = [MetadataFilter(key: "restored", value: "true")] }), ["1"])
        XCTAssertEqual(ids(try search { $0.metadata = [MetadataFilter(key: "sequel", value: "null")] }), ["1"])
        XCTAssertEqual(ids(try search { $0.metadata = [MetadataFilter(key: "rating", value: "8.5")] }), ["4"])
        // An object matches no filter; a missing key neither; "1" is not true.
        XCTAssertEqual(ids(try search { $0.metadata = [MetadataFilter(key: "nested", value: "{\"a\":1}")] }), [])
        XCTAssertEqual(ids(try search { $0.metadata = [MetadataFilter(key: "restored", value: "1")] }), [])
        XCTAssertEqual(ids(try search {
            $0.metadata = [MetadataFilter(key: "studio", value: "Pixar"), MetadataFilter(key: "oscars", value: "0")]
        }), ["3"])
    }

    func testFiltersCombineAndResultsCarryStoredFacts() throws {
        let r = try search { $0.query = "toy"; $0.minYear = 1996; $0.genres = ["comedy"] }
        XCTAssertEqual(ids(r), ["3"])
        XCTAssertEqual(r.items[0].numRatings, 50)
        XCTAssertEqual(r.items[0].created, 1_700_000_000)
        XCTAssertEqual(try search { $0.query = "Untitled" }.items[0].metadataJSON, "{}")
    }

    func testPagingKeepsTheTotal() throws {
        let page = try search { $0.limit = 2; $0.offset = 2 }
        XCTAssertEqual(ids(page), ["3", "2"])
        XCTAssertEqual(page.totalMatches, 5)
        XCTAssertEqual(ids(try search { $0.offset = 5 }), [])
        XCTAssertEqual(try search { _ in }.items.count, 5)  // default limit 20 > 5
    }

    func testRefusalsNameTheirField() {
        func field(_ edit: (inout ItemSearchQuery) -> Void) -> String? {
            do { _ = try search(edit); return nil } catch let e as ServingError { return e.field } catch { return "?" }
        }
        XCTAssertEqual(field { $0.limit = 1001 }, "limit")
        XCTAssertEqual(field { $0.offset = 6 }, "offset")
        XCTAssertEqual(field { $0.genres = Array(repeating: "a", count: 17) }, "genres")
        XCTAssertEqual(field { $0.genres = ["Action", ""] }, "genres[1]")
        XCTAssertEqual(field { $0.metadata = [MetadataFilter(key: "", value: "x")] }, "metadata[0].key")
        XCTAssertEqual(field { $0.query = String(repeating: "x", count: 257) }, "query")
        XCTAssertEqual(field { $0.minYear = 2000; $0.maxYear = 1990 }, "min_year")
        XCTAssertNil(field { $0.limit = 1000 })
    }
}
