from dgan_al.cli import main

main()
