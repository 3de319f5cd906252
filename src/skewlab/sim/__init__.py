"""Virtual-time execution of the node clocks, NTP exchanges and sources (hours in seconds)."""
