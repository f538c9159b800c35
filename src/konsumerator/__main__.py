from konsumerator.cli import main

main()
