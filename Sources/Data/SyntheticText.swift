// The text of synthetic items: titles built from English word lists in the shapes real titles take ("The Silent
// River", "Letters from Lisbon", "Night Harbor II", "Finding Maya"), and genres. Each taste cluster has its own
// combination of genres and a theme (a subset of the nouns and adjectives its titles mostly draw from), so an item's
// text says something about who watches it, as in real catalogues.

struct SyntheticText {
    static let genreNames = ["Action", "Adventure", "Animation", "Biography", "Children's", "Comedy", "Crime",
                             "Documentary", "Drama", "Family", "Fantasy", "Film-Noir", "History", "Horror", "Music",
                             "Musical", "Mystery", "Romance", "Sci-Fi", "Sport", "Thriller", "War", "Western", "Short"]
    /// Distinct genre combinations of one to three genres: the clusters there can be.
    static let maxClusters = 1024

    static let nouns = ["River", "Night", "City", "Garden", "Storm", "Heart", "Road", "Shadow", "Island", "Winter",
                        "Summer", "House", "Mountain", "Kingdom", "Letter", "Promise", "Secret", "Dream", "Fire",
                        "Ocean", "Star", "Moon", "Sun", "Harbor", "Forest", "Bridge", "Tower", "Station", "Train",
                        "Mirror", "Door", "Window", "Song", "Dance", "Game", "War", "Peace", "Stranger", "Friend",
                        "Brother", "Sister", "Father", "Mother", "Daughter", "Son", "King", "Queen", "Soldier",
                        "Detective", "Doctor", "Teacher", "Thief", "Hunter", "Ghost", "Machine", "Robot", "Planet",
                        "Galaxy", "Empire", "Legacy", "Journey", "Return", "Escape", "Silence", "Voice", "Echo",
                        "Memory", "Time", "Edge", "Line", "Circle", "Code", "Signal", "Wave", "Wind", "Rain",
                        "Snow", "Stone", "Glass", "Gold", "Silver", "Blood", "Rose", "Wolf", "Bird", "Horse",
                        "Dragon", "Lion", "Tiger", "Fox", "Crow", "Angel", "Devil", "Saint", "Hero", "Outlaw",
                        "Sheriff", "Pilot", "Captain", "Spy", "Agent", "Witness", "Judge", "Desert",
                        "Valley", "Canyon", "Frontier", "Border", "Harvest", "Festival", "Wedding", "Funeral",
                        "Party", "Holiday", "Weekend", "Morning", "Evening", "Midnight", "Dawn", "Horizon",
                        "Lighthouse", "Castle", "Palace", "Village", "Street", "Avenue", "Market", "Factory",
                        "Theater", "Circus", "Carnival", "Museum", "Library", "Hospital", "Prison", "School",
                        "Academy", "Club", "Band", "Orchestra", "Chorus", "Ballad", "Symphony", "Anthem"]
    static let adjectives = ["Silent", "Dark", "Bright", "Lost", "Last", "First", "Hidden", "Broken", "Golden",
                             "Secret", "Wild", "Quiet", "Endless", "Final", "Forgotten", "Little", "Great", "Old",
                             "New", "Red", "Blue", "Black", "White", "Green", "Cold", "Hot", "Long", "Short",
                             "Dangerous", "Beautiful", "Strange", "Perfect", "Sweet", "Bitter", "Fallen", "Rising",
                             "Burning", "Frozen", "Electric", "Invisible", "Impossible", "Eternal", "Savage",
                             "Gentle", "Crazy", "Lucky", "Lonely", "Happy", "Sad", "Brave", "Deadly", "Holy",
                             "Wicked", "Royal", "Midnight", "Distant", "Northern", "Southern", "Western", "Eastern"]
    static let names = ["Maya", "Jack", "Emma", "Leo", "Nora", "Sam", "Clara", "Max", "Lucy", "Oscar", "Rosa",
                        "Victor", "Anna", "Felix", "Iris", "Hugo", "Mia", "Theo", "Vera", "Otto", "Julia", "Marco",
                        "Elena", "Tom", "Sofia", "Ben", "Ada", "Noah", "Lena", "Paul", "Eva", "Daniel", "Grace",
                        "Henry", "Alice", "Arthur", "Rita", "George", "Stella", "Frank"]
    static let places = ["Paris", "Berlin", "Lisbon", "Tokyo", "Cairo", "Chicago", "Texas", "Alaska", "Rome",
                         "Vienna", "Havana", "Bombay", "Sahara", "Brooklyn", "Manhattan", "London", "Venice",
                         "Dublin", "Oslo", "Kyoto", "Marseille", "Nevada", "Montana", "Memphis", "Shanghai",
                         "Istanbul", "Athens", "Prague", "Moscow", "Rio"]
    static let verbs = ["Finding", "Chasing", "Saving", "Becoming", "Leaving", "Waiting for", "Loving", "Killing",
                        "Remembering", "Searching for", "Meeting", "Following", "Catching", "Raising", "Burying"]
    static let sequels = ["II", "III", "IV", "2", "3", "Returns", "Reloaded", "Part II", "The Beginning"]

    /// Per cluster: its genres (space-separated, as RecBole's token_seq) and its theme words.
    let genres: [String]
    let themeNouns: [[String]]
    let themeAdjectives: [[String]]

    init(clusters: Int, seed: UInt64) {
        var g = SplitMix64(seed: seed)
        var seen = Set<String>()
        var genres: [String] = []
        var nounThemes: [[String]] = [], adjectiveThemes: [[String]] = []
        let g1 = Self.genreNames.count
        while genres.count < clusters {
            // One to three distinct genres in list order; combinations repeat only by chance, so redraw on a repeat.
            let size = 1 + Int(g.next() % 3)
            var picked = Set<Int>()
            while picked.count < size { picked.insert(Int(g.next() % UInt64(g1))) }
            let text = picked.sorted().map { Self.genreNames[$0] }.joined(separator: " ")
            guard seen.insert(text).inserted else { continue }
            genres.append(text)
            nounThemes.append((0..<16).map { _ in Self.nouns[Int(g.next() % UInt64(Self.nouns.count))] })
            adjectiveThemes.append((0..<8).map { _ in Self.adjectives[Int(g.next() % UInt64(Self.adjectives.count))] })
        }
        self.genres = genres
        themeNouns = nounThemes
        themeAdjectives = adjectiveThemes
    }

    /// A title and release year for an item of `cluster`; theme words 70% of the time.
    func title(cluster: Int, _ g: inout SplitMix64) -> (title: String, year: Int) {
        func pick(_ list: [String]) -> String { list[Int(g.next() % UInt64(list.count))] }
        func noun() -> String { g.nextDouble() < 0.7 ? pick(themeNouns[cluster]) : pick(Self.nouns) }
        func adjective() -> String { g.nextDouble() < 0.7 ? pick(themeAdjectives[cluster]) : pick(Self.adjectives) }
        var title: String
        switch g.next() % 10 {
        case 0: title = "The \(adjective()) \(noun())"
        case 1: title = "\(noun()) of the \(noun())"
        case 2: title = "\(pick(Self.names))'s \(noun())"
        case 3: title = "\(adjective()) \(noun())"
        case 4: title = "The \(noun())"
        case 5: title = "\(pick(Self.verbs)) \(pick(Self.names))"
        case 6: title = "\(noun())s from \(pick(Self.places))"
        case 7: title = "\(pick(Self.places)) \(noun())"
        case 8: title = "\(adjective()) \(noun()): The \(noun()) of \(pick(Self.names))"
        default: title = "A \(noun()) in \(pick(Self.places))"
        }
        if g.next() % 12 == 0 { title += " " + pick(Self.sequels) }
        // Years 1930-2024, more of them recent, as in film catalogues.
        let year = 2024 - Int(94 * (g.nextDouble() * g.nextDouble()))
        return (title, year)
    }
}
