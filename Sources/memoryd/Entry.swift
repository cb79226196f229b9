/// `memoryd` is a command with subcommands whose default one serves: `memoryd migrate …` converts or copies
/// stored data; anything else (`memoryd --socket …`, `--help`, `--version`, `--check-config`, the backends'
/// flags) is the daemon exactly as before, help text included. ArgumentParser's own default subcommand would
/// print the root's help for `memoryd --help` instead of the daemon's options, so the choice is made here.
@main
enum MemorydCommand {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "migrate" {
            Migrate.main(Array(arguments.dropFirst()))
        } else {
            Memoryd.main()
        }
    }
}
