/tmp/bins/herald-bench fanout --users 10 --connections 1000 --publishers 4 --delivery-rate 50000 --duration 5 --settle 1 --drain 5 --threads 1 --sources 2 --private-rooms
