use garonne_sdk::{Config, Message, Output, Processor, Reading};
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct Fahrenheit {
    converted: u64, // state: kept across restarts
    #[serde(skip)]
    offset: f64, // configuration: set by init, which runs again after a restore
}

impl Processor for Fahrenheit {
    fn init(&mut self, config: &Config) -> Result<(), String> {
        self.offset = config.f64_or("offset", 32.0)?;
        Ok(())
    }

    fn on_reading(&mut self, reading: &Reading<'_>, out: &mut Output) -> Result<(), String> {
        let sensor = reading.sensor();
        if sensor.kind == "temperature" {
            self.converted += 1;
            let value = reading.value() * 9.0 / 5.0 + self.offset;
            let topic = format!("fahrenheit/{}", sensor.id);
            out.emit(Message::new(topic, &sensor.id, "temperature", value, "°F", reading.time()));
        }
        Ok(())
    }
}

garonne_sdk::export_processor!(Fahrenheit);
