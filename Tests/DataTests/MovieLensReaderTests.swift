import XCTest
@testable import Data

final class MovieLensReaderTests: XCTestCase {
    func testReads100KWithLatin1TitlesAndGenreFlags() throws {
        let dir = TempDir()
        dir.write("u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
        let flags = { (on: Set<Int>) in (0..<19).map { on.contains($0) ? "1" : "0" }.joined(separator: "|") }
        // "Misérables" in Latin-1: 0xE9 for é.
        var item = Array("242|Mis".utf8) + [0xE9] + Array("rables, Les (1995)|01-Jan-1995||http://x|".utf8)
        item += Array(flags([8, 14]).utf8) + [0x0A]
        item += Array("302|L.A. Confidential (1997)|01-Jan-1997||http://y|\(flags([6, 13, 16]))\n".utf8)
        dir.write("u.item", bytes: item)
        let d = try DatasetLoader.load(dir.path)
        XCTAssertEqual(d.catalog.count, 2)
        XCTAssertEqual(d.catalog[0].title, "Misérables, Les")
        XCTAssertEqual(d.catalog[0].year, 1995)
        XCTAssertEqual(d.catalog[0].genres, ["Drama", "Romance"])
        XCTAssertEqual(d.catalog[1].genres, ["Crime", "Mystery", "Thriller"])
        XCTAssertEqual(d.userIds, ["186", "196"])
        XCTAssertEqual(d.interactions[0], Interaction(user: 1, item: 0, rating: 3, timestamp: 881_250_949))
    }

    func testMalformed100K() {
        let dir = TempDir()
        dir.write("u.data", "1\t2\t3\t4\n1\t2\tx\t4\n")
        assertMalformed(try DatasetLoader.load(dir.path), file: "u.data", line: 2, column: 5, contains: "rating")
        let d2 = TempDir()
        d2.write("u.data", "1\t2\t3\t4\n")
        d2.write("u.item", "2|Film (1990)|||url|" + Array(repeating: "0", count: 18).joined(separator: "|") + "|2\n")
        assertMalformed(try DatasetLoader.load(d2.path), file: "u.item", line: 1, column: 57, contains: "genre flag")
    }

    func testReads1M() throws {
        let dir = TempDir()
        dir.write("ratings.dat", "1::1193::5::978300760\n2::1::4::978300000\n")
        dir.write("movies.dat", "1::Toy Story (1995)::Animation|Children's|Comedy\n1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n")
        let d = try DatasetLoader.load(dir.path)
        XCTAssertEqual(d.catalog.items.map(\.id), ["1", "1193"])
        XCTAssertEqual(d.catalog[1].title, "One Flew Over the Cuckoo's Nest")
        XCTAssertEqual(d.catalog[1].year, 1975)
        XCTAssertEqual(d.catalog[0].genres, ["Animation", "Children's", "Comedy"])
        XCTAssertEqual(d.interactions.count, 2)
        let bad = TempDir()
        bad.write("ratings.dat", "1::1193::5::978300760\n1::1193::5\n")
        assertMalformed(try DatasetLoader.load(bad.path), file: "ratings.dat", line: 2, column: 11, contains: "expected 4 fields")
    }

    func testReadsLatestCSVWithQuotes() throws {
        let dir = TempDir()
        dir.write("ratings.csv", "userId,movieId,rating,timestamp\n1,11,4.5,964982703\n1,2,2.0,964982224\n")
        dir.write("movies.csv", "movieId,title,genres\n2,\"American President, The (1995)\",Comedy|Drama|Romance\n" +
                  "11,\"Say \"\"Hi\"\" (2001) \",(no genres listed)\n")
        let d = try DatasetLoader.load(dir.path)
        XCTAssertEqual(d.catalog[0].title, "American President, The")
        XCTAssertEqual(d.catalog[0].genres, ["Comedy", "Drama", "Romance"])
        XCTAssertEqual(d.catalog[1].title, "Say \"Hi\"")
        XCTAssertEqual(d.catalog[1].year, 2001)
        XCTAssertEqual(d.catalog[1].genres, [])
        XCTAssertEqual(d.interactions[0].rating, 4.5)
    }

    func testMalformedCSV() {
        let dir = TempDir()
        dir.write("ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n")
        dir.write("movies.csv", "movieId,title,genres\n2,\"Open quote,Drama\n")
        assertMalformed(try DatasetLoader.load(dir.path), file: "movies.csv", line: 2, column: 3, contains: "not closed")
        let d2 = TempDir()
        d2.write("ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n")
        d2.write("movies.csv", "movieId,title,genres\n2,\"Quoted\"x,Drama\n")
        assertMalformed(try DatasetLoader.load(d2.path), file: "movies.csv", line: 2, column: 11, contains: "comma")
    }

    func testTitleYearSplit() {
        XCTAssertEqual(MovieTitle.splitYear(Item(id: "1", title: "Toy Story (1995)")).title, "Toy Story")
        XCTAssertEqual(MovieTitle.splitYear(Item(id: "1", title: "unknown")).year, 0)
        let x = MovieTitle.splitYear(Item(id: "1", title: "Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)"))
        XCTAssertEqual(x.title, "Shanghai Triad (Yao a yao yao dao waipo qiao)")
        XCTAssertEqual(x.year, 1995)
    }
}
