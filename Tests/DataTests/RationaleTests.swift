// Rationale.text on hand-written histories: the expected strings are worked out by hand from the rules in
// Sources/Data/Rationale.swift (recent titles, the best-rated other title, shared genres by count then recency).
import Data
import XCTest

final class RationaleTests: XCTestCase {
    let catalog = Catalog(items: [
        Item(id: "1", title: "Alien", year: 1979, genres: ["Horror", "Sci-Fi"]),
        Item(id: "2", title: "Heat", year: 1995, genres: ["Action", "Crime", "Thriller"]),
        Item(id: "3", title: "Fargo", year: 1996, genres: ["Crime", "Drama", "Thriller"]),
        Item(id: "4", title: "Babe", year: 1995, genres: ["Children's", "Comedy", "Drama"]),
        Item(id: "5", title: "Se7en", year: 1995, genres: ["Crime", "Thriller"]),
        Item(id: "6", title: "Clueless", genres: ["Comedy", "Romance"]),
    ])

    func index(_ id: String) -> Int { catalog.items.firstIndex { $0.id == id }! }

    func history(_ lines: [(String, Float)]) -> UserHistory {
        UserHistory(items: lines.map { index($0.0) }, ratings: lines.map(\.1))
    }

    func testRecentLikedAndSharedGenres() {
        // Alien 5, Heat 4, Babe 5, Fargo 3, Se7en 4, Clueless 2 (oldest first).
        // Recent: Clueless (no year), Se7en. Liked among the rest: Alien and Babe rated 5, Babe the more recent.
        // Genres: Crime 3 and Thriller 3 (both last seen in Se7en: alphabetical), then Comedy 2 (last seen in
        // Clueless) before Drama 2 (last seen in Fargo).
        let h = history([("1", 5), ("2", 4), ("4", 5), ("3", 3), ("5", 4), ("6", 2)])
        XCTAssertEqual(Rationale.text(history: h, catalog: catalog),
                       "Recent: [Clueless], [Se7en (1995)]. Liked: [Babe (1995)]. Genres: Crime, Thriller, Comedy.")
        XCTAssertEqual(Rationale.text(history: h, catalog: catalog, recent: 1, genres: 1),
                       "Recent: [Clueless]. Liked: [Babe (1995)]. Genres: Crime.")
    }

    func testOnlyTheShownLinesCount() {
        // Alien (rated 5, Horror) is line 0 of 21: the prompt shows the last 20, so it is neither liked nor counted.
        // Heat and Fargo are both quoted as recent, so no title is left to be liked. Crime and Thriller 20 each
        // (alphabetical), then Drama (10, last seen in the last line) before Action (10, last seen one line earlier).
        var lines: [(String, Float)] = [("1", 5)]
        for _ in 0..<10 { lines += [("2", 3), ("3", 4)] }
        XCTAssertEqual(Rationale.text(history: history(lines), catalog: catalog),
                       "Recent: [Fargo (1996)], [Heat (1995)]. Genres: Crime, Thriller, Drama.")
    }

    func testNoSharedGenreNamesTheLastItemsFirstGenre() {
        XCTAssertEqual(Rationale.text(history: history([("1", 4), ("2", 2)]), catalog: catalog),
                       "Recent: [Heat (1995)], [Alien (1979)]. Genres: Action.")
        XCTAssertEqual(Rationale.text(history: UserHistory(items: []), catalog: catalog), "")
    }
}
